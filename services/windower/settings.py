"""Settings of ``har windower``: every default is declared here, and only here.

The pure core (:mod:`services.windower.core`) takes these settings; flags,
``HAR_*`` environment variables and ``--config`` files are generated from them
(:mod:`imu_har.runtime.settings`).
"""

from __future__ import annotations

from pydantic import Field

from imu_har.protocol.codec import DEFAULT_CHANNELS
from imu_har.runtime.settings import MqttSettings
from imu_har.windowing.windows import DEFAULT_MAX_GAP, WindowSpec


class WindowerSettings(MqttSettings):
    """Settings of ``har windower``."""

    length: int = Field(default=20, ge=2, le=4096, description="Window length in samples")
    hop: int = Field(default=5, ge=1, le=4096, description="Samples between window starts")
    rate: float = Field(default=50.0, gt=0, le=10_000, description="Resampling rate (Hz)")
    max_gap: float = Field(
        default=DEFAULT_MAX_GAP, gt=0, description="Gap (s) that restarts a window"
    )
    channels: list[str] = Field(default=list(DEFAULT_CHANNELS), description="Channels to keep")
    idle_timeout: float = Field(default=60.0, gt=0, description="Forget a silent device after (s)")
    max_devices: int = Field(default=10_000, ge=1, description="Most devices tracked at once")
    follow_model: bool = Field(
        default=True, description="Adopt the model spec of the online classifier"
    )
    # Issue 12.4: one 1 Hz frame of 1,024 samples spans 1,023 s and made 2,553 windows.
    # BLE frames span about 0.25 s; a replay at --speed 40 puts 10 s of a recording in one.
    max_frame_seconds: float = Field(
        default=10.0, gt=0, description="Refuse a frame spanning longer than this (s)"
    )
    # Issue 12.3: one frame stamped 10^6 s ahead silenced its device until a restart.
    max_clock_skew: float = Field(
        default=10.0, gt=0, description="Refuse a frame received this far (s) in our future"
    )
    max_frame_age: float = Field(
        default=86_400.0, gt=0, description="Refuse a frame received this long (s) ago"
    )
    stall_restart: float = Field(
        default=5.0,
        gt=0,
        description="Restart a timeline after its frames were all out of order this long (s)",
    )
    # The classifier publishes its status right after its spec, and again every
    # --status-interval (default 5 s): a spec it has not vouched for by then is foreign.
    spec_confirm: float = Field(
        default=10.0, gt=0, description="Report a model spec no classifier serves after (s)"
    )
    max_batch: int = Field(
        default=256, ge=1, le=100_000, description="Most frames handled in one batch"
    )

    def window_spec(self) -> WindowSpec:
        """The windows these settings ask for (until a classifier's model spec replaces them)."""
        return WindowSpec(self.length, self.hop, self.rate, self.max_gap)
