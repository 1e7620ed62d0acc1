"""The windower's runtime handler: raw frames -> :class:`Windower` -> window messages.

Window length, hop, rate and channels come from the settings, or — when the
online classifier publishes its model spec (retained ``<root>/model/spec``) and
vouches for it in its status — from the model, so the windower and the
classifier cannot disagree and nobody else can steer the windows
(:mod:`services.windower.follow`).
"""

from __future__ import annotations

import logging
from typing import Any

from imu_har.protocol import topics
from imu_har.protocol.codec import decode_frame, encode_window
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import ServiceStatus
from imu_har.protocol.model_spec import ModelSpec
from imu_har.runtime.handler import each
from imu_har.runtime.inbox import Inbound
from imu_har.runtime.service import ServiceRuntime
from imu_har.windowing.windows import WindowSpec
from services.windower.core import Windower
from services.windower.follow import CLASSIFIER, ModelFollower
from services.windower.settings import WindowerSettings

logger = logging.getLogger(__name__)


class WindowerHandler:
    """Runtime handler: frames -> :class:`Windower` -> window messages."""

    def __init__(self, settings: WindowerSettings, runtime: ServiceRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.root = settings.topic_root
        self.core = Windower(settings)
        self.follower = ModelFollower(settings.spec_confirm)
        self.model: str | None = None
        self._spec_topic = topics.MODEL_SPEC.format(self.root)
        self._status_topic = topics.SERVICE_STATUS.format(self.root, service=CLASSIFIER)
        self._device_of = topics.IMU.splitter(self.root)
        self._window_topic = topics.WINDOW.fast(self.root)
        self._out: list[tuple[str, bytes]] = []

    def subscriptions(self) -> list[tuple[str, int]]:
        subs = [(topics.IMU.subscription(self.root), 0)]
        if self.settings.follow_model:
            subs += [(self._spec_topic, 1), (self._status_topic, 1)]
        return subs

    def handle_batch(self, messages: list[Inbound]) -> None:
        each(self.runtime, messages, self._handle)
        if self._out:
            out, self._out = self._out, []
            self.runtime.publish_many(out)

    def _handle(self, message: Inbound) -> None:
        topic = message.topic
        if topic == self._spec_topic:
            self._on_spec(message)
        elif topic == self._status_topic:
            self._on_classifier_status(message)
        else:
            self._on_frame(message)

    def _on_frame(self, message: Inbound) -> None:
        device = self._device_of(message.topic)
        if device is None:
            raise PayloadError("bad_topic", "not a raw-frame topic")
        frame = decode_frame(message.payload)
        if frame.device != device:
            topics.validate_device_id(device)  # a hostile topic level is bad_device
            raise PayloadError("device_mismatch", f"payload device {frame.device!r} on its topic")
        window_topic = self._window_topic
        self._out += [
            (window_topic(w.device), encode_window(w))
            for w in self.core.push(frame, now=message.received_at)
        ]

    def _on_spec(self, message: Inbound) -> None:
        if not message.payload:  # retained spec cleared: keep the current windows
            return
        spec = ModelSpec.from_payload(message.payload)
        self._follow(self.follower.offer_spec(spec, message.received_at))

    def _on_classifier_status(self, message: Inbound) -> None:
        if not message.payload:
            return
        status = ServiceStatus.from_payload(message.payload)
        if status.service != CLASSIFIER:
            raise PayloadError("bad_status", f"status of {status.service!r} on the classifier's")
        self._follow(self.follower.offer_status(status))

    def _follow(self, spec: ModelSpec | None) -> None:
        if spec is None:
            return
        self.core.reconfigure(
            WindowSpec(spec.window, spec.hop, spec.rate, self.settings.max_gap),
            tuple(spec.channels),
        )
        self.model = f"{spec.name}@{spec.version[:12]}"
        logger.info(
            "windows follow model %s: length %d hop %d rate %g Hz",
            self.model,
            spec.window,
            spec.hop,
            spec.rate,
        )

    def tick(self, now: float) -> None:
        self.core.evict_idle(now)
        spec = self.follower.unconfirmed(now)
        if spec is not None:
            self.runtime.reject(
                "untrusted_spec",
                f"model spec {spec.name!r} version {spec.version!r} is not served by an "
                "online classifier: not followed",
            )

    def details(self) -> dict[str, Any]:
        spec = self.core.spec
        return {
            "devices": self.core.devices,
            "length": spec.length,
            "hop": spec.hop,
            "rate": spec.rate,
            "channels": list(self.core.channels),
            "model": self.model,
            "counts": dict(self.core.counts),
        }

    def close(self) -> None:
        """Nothing buffered beyond partial windows, which need more samples anyway."""
