"""Which model spec the windower follows: only the one an online classifier serves.

Issue 12.5: any client could retain a spec on ``<root>/model/spec`` (say with
channels ``["x"]``) and the windower adopted it, which stopped every
prediction. A spec is now followed only when the classifier vouches for it: its
retained status (``<root>/service/classifier/status``, ``state`` online) names
the model it serves in ``details["model"]`` (``version``, and ``channels``,
``window``, ``hop``, ``rate`` when given), and the spec must match all of them.

Either message may come first: a spec waits for the status that vouches for it
(a classifier that reloads publishes its new spec, then its status). A spec no
online classifier has vouched for within ``confirm_seconds`` is reported
once as untrusted, and stays waiting in case a classifier comes online serving
it. A classifier going offline leaves the spec it vouched for in force. Pure:
no MQTT, no clock of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imu_har.protocol.messages import ServiceStatus
from imu_har.protocol.model_spec import ModelSpec

CLASSIFIER = "classifier"
_CHECKED = ("channels", "window", "hop", "rate")  # spec fields the windower uses


class ModelFollower:
    """Pairs the retained model spec with the classifier's retained status."""

    def __init__(self, confirm_seconds: float) -> None:
        self.confirm_seconds = confirm_seconds
        self.vouched: dict[str, Any] | None = None  # details["model"] of the online classifier
        self.pending: ModelSpec | None = None  # a spec no classifier has vouched for (yet)
        self._pending_since = 0.0
        self._reported = False

    def offer_spec(self, spec: ModelSpec, now: float) -> ModelSpec | None:
        """A spec arrived; the spec to follow now, or None (it waits for a status)."""
        if self._vouches_for(spec):
            self.pending = None
            return spec
        self.pending, self._pending_since, self._reported = spec, now, False
        return None

    def offer_status(self, status: ServiceStatus) -> ModelSpec | None:
        """The classifier's status arrived; the waiting spec if it now vouches for it."""
        if status.state != "online":
            return None  # offline (or its Last Will): keep following what it served
        model = status.details.get("model")
        if not isinstance(model, Mapping) or not isinstance(model.get("version"), str):
            return None
        self.vouched = dict(model)
        spec = self.pending
        if spec is not None and self._vouches_for(spec):
            self.pending = None
            return spec
        return None

    def unconfirmed(self, now: float) -> ModelSpec | None:
        """The waiting spec, once, when no classifier vouched for it in time."""
        spec = self.pending
        if spec is None or self._reported or now - self._pending_since < self.confirm_seconds:
            return None
        self._reported = True
        return spec

    def _vouches_for(self, spec: ModelSpec) -> bool:
        model = self.vouched
        if model is None or model.get("version") != spec.version:
            return False
        return all(model[key] == _value(spec, key) for key in _CHECKED if key in model)


def _value(spec: ModelSpec, key: str) -> object:
    value = getattr(spec, key)
    return list(value) if isinstance(value, list | tuple) else value
