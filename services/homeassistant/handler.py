"""The bridge's runtime handler: the other services' topics in, the core's messages out.

Subscribes to device statuses, predictions, workout states, repetitions and
sets, the model spec, and Home Assistant's status; parses each message with its
protocol model (anything invalid raises :class:`PayloadError` and is counted by
:func:`imu_har.runtime.handler.each`), checks that the device in the payload is
the one in the topic, and hands it to :class:`services.homeassistant.core.Bridge`.
What the core returns is published in order; the frequent state messages (QoS
0) go out in one write per batch.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, TypeVar

from imu_har.protocol import topics
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import DeviceStatus, Prediction
from imu_har.protocol.model_spec import ModelSpec
from imu_har.protocol.workout import RepEvent, SetEvent, WorkoutState
from imu_har.runtime.handler import each
from imu_har.runtime.inbox import Inbound
from imu_har.runtime.service import ServiceRuntime
from services.homeassistant.core import Bridge, Out
from services.homeassistant.settings import HomeAssistantSettings

logger = logging.getLogger(__name__)


class _OfDevice(Protocol):
    @property
    def device(self) -> str: ...


M = TypeVar("M", bound=_OfDevice)


class HomeAssistantHandler:
    """Runtime handler: protocol messages -> :class:`Bridge` -> Home Assistant messages."""

    def __init__(self, settings: HomeAssistantSettings, runtime: ServiceRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.core = Bridge(settings)
        root = self.root = settings.topic_root
        self._spec_topic = topics.MODEL_SPEC.format(root)
        self._ha_status_topic = topics.HA_STATUS.format(settings.discovery_prefix)
        self._prediction = topics.PREDICTION.splitter(root)
        self._status = topics.DEVICE_STATUS.splitter(root)
        self._workout = topics.WORKOUT.splitter(root)
        self._rep = topics.REP.splitter(root)
        self._set = topics.SET.splitter(root)
        self._out: list[Out] = []

    def subscriptions(self) -> list[tuple[str, int]]:
        root = self.root
        return [
            (topics.DEVICE_STATUS.subscription(root), 1),
            (topics.PREDICTION.subscription(root), 0),
            (topics.WORKOUT.subscription(root), 1),
            (topics.REP.subscription(root), 1),
            (topics.SET.subscription(root), 1),
            (self._spec_topic, 1),
            (self._ha_status_topic, 1),
        ]

    def handle_batch(self, messages: list[Inbound]) -> None:
        each(self.runtime, messages, self._handle)
        self._flush()

    def _handle(self, message: Inbound) -> None:
        topic, now = message.topic, message.received_at
        if (level := self._prediction(topic)) is not None:
            p = Prediction.from_payload(message.payload)
            self._out += self.core.prediction(_same(level, p), now)
        elif (level := self._status(topic)) is not None:
            self._on_status(level, message)
        elif (level := self._workout(topic)) is not None:
            if message.payload:  # a cleared retained state says nothing
                state = WorkoutState.from_payload(message.payload)
                self._out += self.core.workout(_same(level, state), now, message.retain)
        elif (level := self._rep(topic)) is not None:
            rep = RepEvent.from_payload(message.payload)
            self._out += self.core.repetition(_same(level, rep), now)
        elif (level := self._set(topic)) is not None:
            done = SetEvent.from_payload(message.payload)
            self._out += self.core.finished_set(_same(level, done), now)
        elif topic == self._spec_topic:
            if message.payload:  # a cleared spec: keep the labels we have
                self._out += self.core.spec(ModelSpec.from_payload(message.payload), now)
        elif topic == self._ha_status_topic:
            self._out += self.core.home_assistant(message.payload, now)
        else:
            raise PayloadError("bad_topic", "not a topic the bridge subscribes to")

    def _on_status(self, level: str, message: Inbound) -> None:
        if level.lower() in topics.RESERVED_NAMES:
            return  # <root>/recorder/status and friends match <root>/+/status: not devices
        device = topics.validate_device_id(level)
        status = DeviceStatus.from_payload(message.payload) if message.payload else None
        if status is not None and status.device != device:
            raise PayloadError("bad_status", f"a status of {status.device!r} on {device!r}'s topic")
        self._out += self.core.status(device, status, message.received_at, message.retain)

    def tick(self, now: float) -> None:
        self._out += self.core.tick(now)
        self._flush()

    def _flush(self) -> None:
        """Publish what the core returned, in order; refusals it reported are counted."""
        for reason, detail in self.core.refused:
            self.runtime.reject(reason, detail)
        self.core.refused.clear()
        out, self._out = self._out, []
        batch: list[tuple[str, bytes]] = []
        for topic, payload, qos, retain in out:
            if qos == 0 and not retain:
                batch.append((topic, payload))
                continue
            if batch:
                self.runtime.publish_many(batch)
                batch = []
            self.runtime.publish(topic, payload, qos=qos, retain=retain)
        if batch:
            self.runtime.publish_many(batch)

    def details(self) -> dict[str, Any]:
        core = self.core
        return {
            "wearables": len(core.wearables),
            "available": sum(w.sent_available is True for w in core.wearables.values()),
            "exercise_options": list(core.options),
            "discovery_prefix": self.settings.discovery_prefix,
            "counts": dict(core.counts),
        }

    def close(self) -> None:
        """Nothing to flush: the runtime's ``offline`` status makes every entity unavailable."""


def _same(level: str, message: M) -> M:
    """``message`` if its device is the topic's; else a hostile topic level or a mismatch."""
    if message.device != level:
        topics.validate_device_id(level)  # a hostile topic level is bad_device
        raise PayloadError("device_mismatch", f"payload device {message.device!r} on {level!r}")
    return message
