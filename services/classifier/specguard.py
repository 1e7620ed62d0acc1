"""When the classifier republishes its own model spec over another one (issue 12.5).

The windower cuts windows by whatever spec is retained on ``<root>/model/spec``.
The classifier used to publish its spec only on connect and after a reload, so
a spec that anyone else published later (a test run, another deployment, a
forged message) stayed there, and every window cut for it was refused. Now the
classifier watches the topic (MQTT v5 *no local*: never its own publications)
and :class:`SpecGuard` decides when to answer with its own spec:

* equal to the spec it serves (version and content): nothing to do, so replicas
  serving the same model never answer each other;
* while its own reload runs or waits: later, because that reload may bring
  exactly this spec (another replica swapped first), and a swap publishes the
  new spec anyway;
* the spec of its previous model during the grace period: later, because a
  replica that has not swapped yet publishes the new spec when it does;
* anything else: republish, at most once per foreign spec per ``hold_off``
  seconds. Two classifiers serving different models would otherwise answer
  each other without end; this way each answers once, the last answer stays,
  and both count ``foreign_spec``.

Pure logic: the handler feeds it the messages and publishes what it says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.model_spec import ModelSpec

HOLD_OFF = 10.0  # s between two answers to the same foreign spec
MAX_REMEMBERED = 64  # foreign specs whose last answer is remembered


@dataclass(frozen=True)
class Sighting:
    """A spec message that is not the classifier's own."""

    spec: ModelSpec | None  # None: an empty (cleared) or invalid payload
    digest: str  # identifies the payload
    size: int

    def describe(self) -> str:
        """For logs: name and version as ``%r``, never the raw text."""
        if self.spec is not None:
            return f"spec {self.spec.name!r} version {self.spec.version!r}"
        return "an empty (cleared) spec" if not self.size else f"an invalid spec ({self.size} B)"


@dataclass(frozen=True)
class Verdict:
    """What to do about a foreign spec: republish ours now, or not again yet."""

    sighting: Sighting
    republish: bool


class SpecGuard:
    """The last foreign spec seen on the retained topic, and when it was answered."""

    def __init__(self, hold_off: float) -> None:
        """Answer the same foreign spec at most once per ``hold_off`` seconds."""
        self.hold_off = hold_off
        self._pending: Sighting | None = None
        self._answered: dict[str, float] = {}

    @property
    def pending(self) -> Sighting | None:
        """The foreign spec seen last and not yet decided on (deferred), if any."""
        return self._pending

    def seen(self, payload: bytes, own: ModelSpec) -> None:
        """Record a message from the spec topic (the newest one is what is retained)."""
        try:
            spec = ModelSpec.from_payload(payload) if payload else None
        except PayloadError:
            spec = None
        if spec == own:
            self._pending = None
            return
        digest = hashlib.sha256(payload).hexdigest()[:16]
        self._pending = Sighting(spec, digest, len(payload))

    def verdict(
        self, own: ModelSpec, previous: ModelSpec | None, reloading: bool, now: float
    ) -> Verdict | None:
        """What to do now about the last foreign spec, if anything (see the module doc).

        ``previous`` is the spec of the previous model while its grace period
        lasts; ``reloading`` whether a reload of our own runs or waits.
        """
        sighting = self._pending
        if sighting is None:
            return None
        if sighting.spec == own:  # we swapped to it meanwhile
            self._pending = None
            return None
        if reloading or (previous is not None and sighting.spec == previous):
            return None  # decide once our reload is done or the grace period is over
        self._pending = None
        last = self._answered.get(sighting.digest)
        if last is not None and now - last < self.hold_off:
            return Verdict(sighting, republish=False)
        if len(self._answered) >= MAX_REMEMBERED:
            self._answered.clear()
        self._answered[sighting.digest] = now
        return Verdict(sighting, republish=True)
