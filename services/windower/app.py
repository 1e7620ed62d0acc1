"""``har windower``: subscribe to raw frames, publish sliding windows.

Window length, hop, rate and channels come from flags, or — when a classifier
publishes its model spec (retained ``<root>/model/spec``) — from the model, so
the windower and the classifier cannot disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from imu_har.protocol import topics
from imu_har.protocol.codec import DEFAULT_CHANNELS, decode_frame, encode_window
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.model_spec import ModelSpec
from imu_har.runtime.service import Inbound, ServiceRuntime
from imu_har.runtime.settings import MqttSettings, service_settings
from imu_har.windowing.windows import WindowSpec
from services.windower.core import Windower

logger = logging.getLogger(__name__)


class WindowerSettings(MqttSettings):
    """Settings of ``har windower``."""

    length: int = Field(default=20, ge=2, le=4096, description="Window length in samples")
    hop: int = Field(default=5, ge=1, le=4096, description="Samples between window starts")
    rate: float = Field(default=50.0, gt=0, le=10_000, description="Resampling rate (Hz)")
    max_gap: float = Field(default=1.0, gt=0, description="Gap (s) that restarts a window")
    channels: list[str] = Field(default=list(DEFAULT_CHANNELS), description="Channels to keep")
    idle_timeout: float = Field(default=60.0, gt=0, description="Forget a silent device after (s)")
    max_devices: int = Field(default=10_000, ge=1, description="Most devices tracked at once")
    follow_model: bool = Field(default=True, description="Adopt the classifier's model spec")


class WindowerService:
    """Runtime handler: frames -> :class:`Windower` -> window messages."""

    def __init__(self, settings: WindowerSettings, runtime: ServiceRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.root = settings.topic_root
        self.core = Windower(
            WindowSpec(settings.length, settings.hop, settings.rate, settings.max_gap),
            tuple(settings.channels),
            settings.idle_timeout,
            settings.max_devices,
        )
        self.model: str | None = None
        self._spec_topic = topics.MODEL_SPEC.format(self.root)

    def subscriptions(self) -> list[tuple[str, int]]:
        subs = [(topics.IMU.subscription(self.root), 0)]
        if self.settings.follow_model:
            subs.append((self._spec_topic, 1))
        return subs

    def handle_batch(self, messages: list[Inbound]) -> None:
        out: list[tuple[str, bytes]] = []
        for message in messages:
            try:
                if message.topic == self._spec_topic:
                    self._adopt_spec(message.payload)
                else:
                    out += self._handle_frame(message)
            except PayloadError as exc:
                self.runtime.reject(exc.reason, f"{message.topic}: {exc.args[0]}")
        if out:
            self.runtime.publish_many(out)

    def _handle_frame(self, message: Inbound) -> list[tuple[str, bytes]]:
        values = topics.IMU.parse(message.topic, self.root)
        if values is None:
            raise PayloadError("bad_topic", "not a raw-frame topic")
        frame = decode_frame(message.payload)
        if frame.device != values["device"]:
            raise PayloadError("device_mismatch", f"payload device {frame.device!r} on its topic")
        return [
            (topics.WINDOW.format(self.root, device=w.device), encode_window(w))
            for w in self.core.push(frame, now=message.received_at)
        ]

    def _adopt_spec(self, payload: bytes) -> None:
        if not payload:  # retained spec cleared: keep the current settings
            return
        spec = ModelSpec.from_payload(payload)
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


def main(argv: Sequence[str] | None = None) -> int:
    """``har windower``: raw frames -> sliding windows."""
    settings = service_settings(
        WindowerSettings, "windower", "Cut raw IMU frames into sliding windows.", argv
    )
    runtime = ServiceRuntime("windower", settings, max_batch=256)
    return runtime.run(WindowerService(settings, runtime))
