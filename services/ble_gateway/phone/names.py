"""Device ids for phones, from what a phone calls itself: a documented, safe and stable rule.

The app's ``deviceId`` (or the name typed on the phone page) is untrusted text.
:func:`phone_device_id`: an id that already is a valid device id
(:func:`imu_har.protocol.topics.validate_device_id`: one topic level of
``A-Z a-z 0-9 _ . : -``, at most 64 characters, not a reserved name) is used as
it is. Anything else becomes its letters, digits, ``_`` and ``-`` (every other
character a ``-``, at most 40 of them, leading ``-``/``_`` dropped, ``phone`` if
nothing is left) plus ``-`` and the first 8 hex digits of the SHA-256 of the
whole text, so two different names never meet, and the same name always gives
the same id. ``--device-map old=new`` then renames the result.
"""

from __future__ import annotations

import hashlib
import re

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import validate_device_id

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_READABLE = 40


def phone_device_id(raw: str, renames: dict[str, str] | None = None) -> str:
    """The device id for a phone that calls itself ``raw`` (see the module's rule)."""
    try:
        device = validate_device_id(raw)
    except PayloadError:
        readable = _UNSAFE.sub("-", raw[: MAX_READABLE * 4])[:MAX_READABLE].lstrip("-_")
        digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        device = f"{readable or 'phone'}-{digest}"
    return (renames or {}).get(device, device)
