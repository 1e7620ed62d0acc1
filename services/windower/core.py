"""The windower's pure core: ``Windower.push(frame) -> windows`` for many devices.

Adds to :mod:`imu_har.windowing.windows` what a live stream needs: a timeline per
device (device clock anchored to wall-clock time, or receive time when the
packet has none), channel selection by name, counters for duplicates, gaps and
clock resyncs, and eviction of idle devices so memory stays bounded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from imu_har.protocol.codec import DEFAULT_CHANNELS, Frame, Window
from imu_har.protocol.errors import PayloadError
from imu_har.windowing.clock import DeviceClock
from imu_har.windowing.windows import DeviceWindower, WindowSpec


@dataclass
class _DeviceState:
    windower: DeviceWindower
    last_seq: int = -1
    last_seen: float = 0.0
    clock: DeviceClock = field(default_factory=DeviceClock)
    source_time: float = 0.0


@dataclass
class Windower:
    """Per-device windowing of raw frames; no I/O, fully unit-testable."""

    spec: WindowSpec = field(default_factory=WindowSpec)
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    idle_timeout: float = 60.0
    max_devices: int = 10_000
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._devices: dict[str, _DeviceState] = {}

    @property
    def devices(self) -> int:
        """How many devices have live state."""
        return len(self._devices)

    def reconfigure(self, spec: WindowSpec, channels: tuple[str, ...]) -> None:
        """Adopt a new spec (e.g. a new model): every device starts afresh."""
        if (spec, channels) != (self.spec, self.channels):
            self.spec, self.channels = spec, channels
            self._devices.clear()
            self.counts["reconfigured"] += 1

    def push(self, frame: Frame, now: float | None = None) -> list[Window]:
        """Windows completed by ``frame``; raises :class:`PayloadError` if it cannot fit."""
        columns = self._columns(frame)
        state = self._state(frame.device)
        state.last_seen = frame.receive_time if now is None else now
        if frame.seq == state.last_seq:
            self.counts["duplicate"] += 1
            return []
        resyncs = state.clock.resyncs
        times = state.clock.sample_times(
            frame.samples.shape[0], frame.rate, frame.receive_time, frame.device_time
        )
        self.counts["clock_resync"] += state.clock.resyncs - resyncs
        result = state.windower.push(times, frame.samples[:, columns])
        if result.dropped:
            self.counts["out_of_order"] += result.dropped
        self.counts["gap"] += result.gaps
        state.last_seq = frame.seq
        state.source_time = max(state.source_time, frame.receive_time)
        units = tuple(frame.units[i] for i in columns)
        return [
            Window(
                device=frame.device,
                seq=w.seq,
                start=w.start,
                end=w.end,
                rate=self.spec.rate,
                samples=w.samples,
                source_time=state.source_time,
                channels=self.channels,
                units=units,
            )
            for w in result.windows
        ]

    def evict_idle(self, now: float) -> list[str]:
        """Forget devices silent for ``idle_timeout`` seconds; return their ids."""
        idle = [d for d, s in self._devices.items() if now - s.last_seen > self.idle_timeout]
        for device in idle:
            del self._devices[device]
        self.counts["evicted"] += len(idle)
        return idle

    def _columns(self, frame: Frame) -> list[int]:
        if frame.channels == self.channels:
            return list(range(len(self.channels)))
        index = {name: i for i, name in enumerate(frame.channels)}
        missing = [c for c in self.channels if c not in index]
        if missing:
            raise PayloadError("channel_mismatch", f"frame lacks channels {missing}")
        return [index[c] for c in self.channels]

    def _state(self, device: str) -> _DeviceState:
        state = self._devices.get(device)
        if state is None:
            if len(self._devices) >= self.max_devices:
                raise PayloadError(
                    "too_many_devices", f"already tracking {self.max_devices} devices"
                )
            state = _DeviceState(DeviceWindower(self.spec, len(self.channels), track_sources=False))
            self._devices[device] = state
        return state
