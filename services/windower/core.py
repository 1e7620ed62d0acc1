"""The windower's pure core: ``Windower.push(frame) -> windows`` for many devices.

Adds to :mod:`imu_har.windowing.windows` what a live stream needs: a timeline per
device (device clock anchored to wall-clock time, or receive time when the
packet has none), channel selection by name, counters for duplicates, gaps and
clock resyncs, and bounds on everything one input or one device can cost:

- a frame whose receive time is more than ``max_clock_skew`` ahead of the
  windower's clock, or more than ``max_frame_age`` behind it, is refused
  (``time_in_future``, ``time_too_old``): one frame stamped far ahead used to
  put its device's timeline there, and every later sample was dropped as out of
  order until a restart (issue 12.3);
- a device whose frames have all been out of order for ``stall_restart``
  seconds of wall time starts a new timeline (``timeline_restart``), so a
  timeline that ran ahead (a clock stepped back) recovers by itself;
- a frame spanning more than ``max_frame_seconds`` is refused
  (``frame_too_long``): one 1 Hz frame of 1,024 samples made 2,553 windows
  (issue 12.4). A frame therefore yields at most
  ``(max_frame_seconds + max_gap) * rate / hop + 1`` windows;
- at most ``max_devices`` devices, and idle ones are evicted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from imu_har.protocol.codec import Frame, Window
from imu_har.protocol.errors import PayloadError
from imu_har.windowing.clock import DeviceClock
from imu_har.windowing.windows import DeviceWindower, WindowSpec
from services.windower.settings import WindowerSettings


@dataclass
class _DeviceState:
    windower: DeviceWindower
    last_seq: int = -1
    last_seen: float = 0.0
    clock: DeviceClock = field(default_factory=DeviceClock)
    source_time: float = 0.0
    behind_since: float | None = None  # wall time of the first of a run of dropped frames


class Windower:
    """Per-device windowing of raw frames; no I/O, fully unit-testable."""

    def __init__(self, settings: WindowerSettings) -> None:
        self.settings = settings
        self.spec: WindowSpec = settings.window_spec()
        self.channels: tuple[str, ...] = tuple(settings.channels)
        self.counts: Counter[str] = Counter()
        self._devices: dict[str, _DeviceState] = {}
        # Read once: pydantic attribute access on every frame would cost more.
        self._max_span = settings.max_frame_seconds
        self._max_ahead = settings.max_clock_skew
        self._max_age = settings.max_frame_age
        self._stall = settings.stall_restart

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
        """Windows completed by ``frame``; raises :class:`PayloadError` if it cannot fit.

        ``now`` is the windower's clock when the frame arrived; without it (offline,
        e.g. tests replaying old recordings) receive times are not checked against it.
        """
        columns = self._columns(frame)
        n = frame.samples.shape[0]
        if (n - 1) / frame.rate > self._max_span:
            raise PayloadError(
                "frame_too_long",
                f"{n} samples at {frame.rate:g} Hz span more than {self._max_span:g} s",
            )
        if now is None:
            now = frame.receive_time
        elif not now - self._max_age <= frame.receive_time <= now + self._max_ahead:
            self._refuse_time(frame.receive_time, now)
        state = self._state(frame.device)
        state.last_seen = now
        if frame.seq == state.last_seq:
            self.counts["duplicate"] += 1
            return []
        resyncs = state.clock.resyncs
        times = state.clock.sample_times(n, frame.rate, frame.receive_time, frame.device_time)
        self.counts["clock_resync"] += state.clock.resyncs - resyncs
        # The usual frame carries just our channels in our order: no column copy (8.7 us).
        values = frame.samples if columns is None else frame.samples[:, columns]
        result = state.windower.push(times, values)
        if result.dropped == n and self._stalled(state, now):
            result = state.windower.push(times, values)  # the first frame of a new timeline
        elif result.dropped < n and state.behind_since is not None:
            state.behind_since = None
        if result.dropped:
            self.counts["out_of_order"] += result.dropped
        self.counts["gap"] += result.gaps
        state.last_seq = frame.seq
        state.source_time = max(state.source_time, frame.receive_time)
        units = frame.units if columns is None else tuple(frame.units[i] for i in columns)
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
        timeout = self.settings.idle_timeout
        idle = [d for d, s in self._devices.items() if now - s.last_seen > timeout]
        for device in idle:
            del self._devices[device]
        self.counts["evicted"] += len(idle)
        return idle

    def _refuse_time(self, receive_time: float, now: float) -> None:
        if receive_time > now:
            raise PayloadError(
                "time_in_future",
                f"received at {receive_time:.3f}, {receive_time - now:.3g} s after our clock "
                f"(at most {self._max_ahead:g} s)",
            )
        raise PayloadError(
            "time_too_old",
            f"received at {receive_time:.3f}, {now - receive_time:.3g} s before our clock "
            f"(at most {self._max_age:g} s)",
        )

    def _stalled(self, state: _DeviceState, now: float) -> bool:
        """True (and the timeline restarted) once a run of dropped frames lasts too long.

        Only a timeline ahead of what the device now sends drops whole frames for
        seconds: a windower or gateway clock stepped back, or a frame from the
        future within ``max_clock_skew``. Waiting ``stall_restart`` seconds keeps a
        late straggler or a repeated burst from restarting the grid.
        """
        if state.behind_since is None:
            state.behind_since = now
            return False
        if now - state.behind_since <= self._stall:
            return False
        state.windower.reset_timeline()
        state.behind_since = None
        self.counts["timeline_restart"] += 1
        return True

    def _columns(self, frame: Frame) -> list[int] | None:
        """Where our channels are in the frame; None when the frame has exactly ours."""
        if frame.channels == self.channels:
            return None
        index = {name: i for i, name in enumerate(frame.channels)}
        missing = [c for c in self.channels if c not in index]
        if missing:
            raise PayloadError("channel_mismatch", f"frame lacks channels {missing}")
        return [index[c] for c in self.channels]

    def _state(self, device: str) -> _DeviceState:
        state = self._devices.get(device)
        if state is None:
            if len(self._devices) >= self.settings.max_devices:
                raise PayloadError(
                    "too_many_devices", f"already tracking {self.settings.max_devices} devices"
                )
            state = _DeviceState(DeviceWindower(self.spec, len(self.channels), track_sources=False))
            self._devices[device] = state
        return state
