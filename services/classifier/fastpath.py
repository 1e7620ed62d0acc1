"""A cheaper decoder for common window payloads; ``decode_window`` stays the rule.

At tens of thousands of windows per second the generic decoder's per-call
Python work (several helper calls, a regex on the device id, a NumPy
finiteness check per window) costs as much as the model. :func:`fast_window`
accepts only what ``decode_window`` accepts for the default channel layout,
with two deferrals: device ids are validated once and cached, and the
finiteness of the samples is checked for the whole batch at once by
:meth:`services.classifier.core.Classifier.classify`. Anything unusual returns
``None`` and the caller falls back to ``decode_window``, which then raises the
precise :class:`PayloadError`. Tests check the equivalence on random and
damaged payloads.
"""

from __future__ import annotations

import math

import numpy as np

from imu_har.protocol.codec import (
    DEFAULT_CHANNELS,
    FLAG_DEFAULT_LAYOUT,
    KIND_WINDOW,
    MAX_PAYLOAD_BYTES,
    MAX_RATE_HZ,
    MAX_WINDOW_SAMPLES,
    PREFIX,
    VERSION,
    WINDOW_HEAD,
    Window,
)
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import validate_device_id

_UNPACK_HEAD = WINDOW_HEAD.unpack_from  # seq, start, end, source_time, rate, C, N
_PREFIX, _HEAD = PREFIX.size, WINDOW_HEAD.size  # version, kind, flags, id length; then the id
_CHANNELS = len(DEFAULT_CHANNELS)  # the default layout
_ROW = 4 * _CHANNELS  # float32 samples
_INF = math.inf
MAX_CACHED_DEVICES = 100_000


class DeviceIds:
    """Validated device ids by their raw bytes (bounded)."""

    def __init__(self) -> None:
        self._ids: dict[bytes, str] = {}

    def get(self, raw: bytes) -> str | None:
        """The id if ``raw`` is a valid device id, else ``None``."""
        device = self._ids.get(raw)
        if device is None:
            try:
                device = validate_device_id(raw.decode("ascii"))
            except (UnicodeDecodeError, PayloadError):
                return None
            if len(self._ids) >= MAX_CACHED_DEVICES:
                self._ids.clear()
            self._ids[raw] = device
        return device


def fast_window(payload: bytes, ids: DeviceIds) -> Window | None:
    """The window in ``payload`` (samples not yet checked for finiteness), or ``None``.

    ``None`` means "not the common case or not valid": decode with ``decode_window``.
    """
    size = len(payload)
    if size < _PREFIX + _HEAD or size > MAX_PAYLOAD_BYTES or type(payload) is not bytes:
        return None
    if payload[0] != VERSION or payload[1] != KIND_WINDOW or not payload[2] & FLAG_DEFAULT_LAYOUT:
        return None
    head = _PREFIX + payload[3]
    samples_at = head + _HEAD
    if size < samples_at:
        return None
    device = ids.get(payload[_PREFIX:head])
    if device is None:
        return None
    seq, start, end, source_time, rate, n_ch, n = _UNPACK_HEAD(payload, head)
    if n_ch != _CHANNELS or not 1 <= n <= MAX_WINDOW_SAMPLES or size - samples_at != n * _ROW:
        return None
    if not (0.0 <= start <= end < _INF and 0.0 <= source_time < _INF and 0.0 < rate <= MAX_RATE_HZ):
        return None
    samples = np.frombuffer(payload, "<f4", n * _CHANNELS, samples_at).reshape(n, _CHANNELS)
    return Window(device, seq, start, end, rate, samples, source_time)
