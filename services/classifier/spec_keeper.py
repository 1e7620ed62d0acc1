"""Keeping the classifier's model spec retained on ``<root>/model/spec``: the MQTT side.

The windower cuts windows by the retained spec, so the classifier publishes its
own on connect, after every reconnect and model swap, and puts it back over a
foreign one when :class:`~services.classifier.specguard.SpecGuard` says so
(issue 12.5); this module does the publishing and counting, the guard decides.
"""

from __future__ import annotations

from imu_har.protocol.model_spec import ModelSpec
from imu_har.runtime.service import ServiceRuntime
from services.classifier.specguard import HOLD_OFF, SpecGuard


class SpecKeeper:
    """Publishes the served spec (retained) and answers foreign specs on ``topic``."""

    def __init__(self, runtime: ServiceRuntime, topic: str) -> None:
        self.runtime = runtime
        self.topic = topic
        self.guard = SpecGuard(HOLD_OFF)
        self._published: tuple[int, str] | None = None  # (disconnects, version) at publishing

    def publish(self, spec: ModelSpec) -> None:
        """Publish ``spec`` retained (QoS 1)."""
        self.runtime.publish(self.topic, spec.to_payload(), qos=1, retain=True)
        self._published = (self.runtime.counters.get("disconnects"), spec.version)

    def keep(self, spec: ModelSpec) -> None:
        """Publish ``spec`` unless it went out since the last (re)connect."""
        if self._published != (self.runtime.counters.get("disconnects"), spec.version):
            self.publish(spec)  # first connect, reconnect, or new model

    def seen(self, payload: bytes, own: ModelSpec) -> None:
        """A spec arrived on the topic (never our own: subscribed with no local)."""
        self.guard.seen(payload, own)

    def check(
        self, own: ModelSpec, previous: ModelSpec | None, reloading: bool, now: float
    ) -> None:
        """Put ``own`` back over a foreign spec when the guard says so; count it either way."""
        verdict = self.guard.verdict(own, previous, reloading, now)
        if verdict is None:
            return
        what = verdict.sighting.describe()
        if verdict.republish:
            self.runtime.reject("foreign_spec", f"{what}: republishing ours ({own.version!r})")
            self.publish(own)
        else:
            self.runtime.reject(
                "foreign_spec",
                f"{what} again within {HOLD_OFF:g} s of our answer "
                "(another classifier serving another model?)",
            )
