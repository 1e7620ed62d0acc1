"""One wearable's link: its connection state, decoder state, counters and retained status.

A :class:`DeviceLink` turns the device's packets into raw :class:`Frame` s (its
own frame seq, the device clock unwrapped, duplicates dropped) and reports
its :class:`DeviceStatus` with the frame and sample rates since the last one.
:class:`services.ble_gateway.core.GatewayCore` holds one per device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from imu_har.protocol.codec import DEFAULT_CHANNELS, DEFAULT_UNITS, Frame
from imu_har.protocol.messages import DeviceState, DeviceStatus
from services.ble_gateway import packets, profiles


@dataclass
class DeviceLink:
    """One wearable's link state, decoder state and counters."""

    device: str
    rate: float  # Hz, of packets that announce none
    source: str = "ble"
    fmt: str = packets.BATCHED
    address: str | None = None
    state: DeviceState = "disconnected"
    rssi: int | None = None
    error: str | None = None
    frames: int = 0
    samples: int = 0
    decode_errors: int = 0
    last_data: float | None = None  # monotonic time of the last good packet
    seq: packets.SequenceTracker = field(default_factory=packets.SequenceTracker)
    clock: packets.ClockUnwrapper = field(default_factory=packets.ClockUnwrapper)
    _meter: tuple[float, int, int] = (0.0, 0, 0)  # time, frames, samples at the last status
    _fps: tuple[float, float] = (0.0, 0.0)

    channels: tuple[str, ...] = DEFAULT_CHANNELS  # of its frames: the format's, or a phone's
    units: tuple[str, ...] = DEFAULT_UNITS
    extra: dict[str, Any] = field(default_factory=dict)  # more DeviceStatus fields (phones)

    def __post_init__(self) -> None:
        if self.source == "ble":
            profile = profiles.get(self.fmt)
            self.channels, self.units = profile.channels, profile.units

    def reset_stream(self) -> None:
        """A new connection: sequence numbers and device clock may restart."""
        self.seq.reset()
        self.clock.reset()

    def to_frame(self, data: bytes, received_at: float) -> Frame | None:
        """Decode one packet into a frame; ``None`` for a duplicate. Raises PayloadError."""
        packet = profiles.decode(self.fmt, data)
        if packet.seq is not None and self.seq.update(packet.seq) == "duplicate":
            return None
        device_time = None
        if packet.device_time_ms is not None:
            device_time = self.clock.seconds(packet.device_time_ms)
        frame = Frame(
            device=self.device,
            seq=self.frames & 0xFFFFFFFF,
            receive_time=received_at,
            rate=packet.rate or self.rate,
            samples=packet.samples,
            device_time=device_time,
            channels=self.channels,
            units=self.units,
        )
        self.frames += 1
        self.samples += len(packet.samples)
        self.last_data = time.monotonic()
        return frame

    def status(self, now: float) -> DeviceStatus:
        """The retained status, with frame and sample rates since the previous one."""
        then, frames, samples = self._meter
        if now - then >= 0.5:
            if then > 0:
                span = now - then
                self._fps = ((self.frames - frames) / span, (self.samples - samples) / span)
            self._meter = (now, self.frames, self.samples)
        return DeviceStatus(
            device=self.device,
            state=self.state,
            source=self.source,
            address=self.address,
            rssi=self.rssi,
            fps=round(self._fps[0], 3),
            sample_rate=round(self._fps[1], 3),
            frames=self.frames,
            lost_packets=self.seq.lost,
            decode_errors=self.decode_errors,
            error=self.error,
            updated_at=time.time(),
            channels=None if self.channels == DEFAULT_CHANNELS else list(self.channels),
            **self.extra,
        )
