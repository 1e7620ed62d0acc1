"""The workout service's pure core: ``push(frame)`` and ``push(prediction)`` -> messages.

No MQTT, no threads, no clock of its own: live, the handler passes the receive
time as ``now``; offline (``har reps``) there is none and only the data's own
times count. Returns the messages to publish: :class:`RepEvent`,
:class:`SetEvent` and :class:`WorkoutState` (imu_har.protocol.workout).

Every input is checked and every structure bounded; what is refused raises
:class:`PayloadError` with the reason the service counts:

- a frame of a rate outside ``min_rate``..``max_rate`` (``bad_rate``) or
  spanning more than ``max_frame_seconds`` (``frame_too_long``): a 0.001 Hz
  frame would ask for a grid of millions of samples;
- input stamped more than ``max_clock_skew`` ahead of ``now`` or ``max_age``
  behind it (``time_in_future``, ``time_too_old``): one frame stamped far ahead
  would put its device's timeline there, and every later sample would be late;
- a frame without the accelerometer channels (``channel_mismatch``; a frame without
  the gyroscope's is counted on the accelerometer alone);
- predictions with too many classes (``too_many_labels``), probabilities
  outside [0, 1] or not summing to one (``bad_probabilities``), class names that
  cannot be exercise names (``bad_label``);
- more than ``max_devices`` devices (``too_many_devices``).

A device whose samples have all been late for :data:`STALL_SECONDS` starts a new
timeline (``timeline_restart``): its set ends, nothing else is lost.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import numpy as np

from imu_har.protocol.codec import Frame
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import Prediction
from imu_har.protocol.workout import WorkoutMessage
from imu_har.windowing.windows import accepted
from services.workout.evidence import vote
from services.workout.settings import WorkoutSettings
from services.workout.signal import MotionSignal
from services.workout.tracker import DeviceTracker

STALL_SECONDS = 5.0  # every sample late for this long (wall time): the device restarted
UNIT_SCALE = {"g": 1.0, "m/s2": 1 / 9.80665, "m/s^2": 1 / 9.80665, "mg": 1e-3}
GYRO_SCALE = {"deg/s": 1.0, "dps": 1.0, "rad/s": 57.29578, "mdps": 1e-3}


@lru_cache(maxsize=256)
def _columns(
    channels: tuple[str, ...], units: tuple[str, ...], acc: tuple[str, ...], gyro: tuple[str, ...]
) -> tuple[slice | list[int], int, np.ndarray | None] | None:
    """Which columns hold the accelerometer (and the gyroscope, when the frame has them):
    a slice when they are side by side (indexing by a list copies through numpy's slow
    path); how many; the factors to g and deg/s, or None when all are 1. None without the
    accelerometer."""
    index = {name: i for i, name in enumerate(channels)}
    if any(name not in index for name in acc):
        return None
    picks = [index[name] for name in acc]
    scales = [UNIT_SCALE.get(units[picks[0]], 1.0)] * len(acc)
    if gyro and all(name in index for name in gyro):
        more = [index[name] for name in gyro]
        picks += more
        scales += [GYRO_SCALE.get(units[more[0]], 1.0)] * len(gyro)
    side_by_side = picks == list(range(picks[0], picks[0] + len(picks)))
    pick = slice(picks[0], picks[0] + len(picks)) if side_by_side else picks
    return pick, len(picks), None if all(x == 1.0 for x in scales) else np.asarray(scales)


class WorkoutCore:
    """Every device's workout; no I/O."""

    def __init__(self, settings: WorkoutSettings) -> None:
        self.settings = settings
        self.devices: dict[str, DeviceTracker] = {}
        self.counts: Counter[str] = Counter()
        self._rest = frozenset(settings.rest_labels)
        self._acc = tuple(settings.channels)
        self._gyro = tuple(settings.gyro_channels)
        self._width = len(self._acc) + len(self._gyro)

    def push(self, item: Frame | Prediction, now: float | None = None) -> list[WorkoutMessage]:
        """Messages caused by one frame or prediction (``now``: receive time, if live)."""
        if isinstance(item, Prediction):
            return self.push_prediction(item, now)
        return self.push_frame(item, now)

    def push_frame(self, frame: Frame, now: float | None = None) -> list[WorkoutMessage]:
        """Raw samples of one device."""
        s = self.settings
        n = len(frame.samples)
        if not s.min_rate <= frame.rate <= s.max_rate:
            raise PayloadError(
                "bad_rate", f"{frame.rate:g} Hz is outside {s.min_rate:g}-{s.max_rate:g} Hz"
            )
        if n / frame.rate > s.max_frame_seconds:
            raise PayloadError("frame_too_long", f"{n} samples at {frame.rate:g} Hz")
        self._check_time(frame.receive_time, now)
        found = _columns(frame.channels, frame.units, self._acc, self._gyro)
        if found is None:
            raise PayloadError("channel_mismatch", f"frame lacks channels {list(self._acc)}")
        pick, count, scale = found
        tracker = self._tracker(frame.device, now)
        times = tracker.signal.clock.sample_times(
            n, frame.rate, frame.receive_time, frame.device_time
        )
        out: list[WorkoutMessage] = []
        # Against the samples held at rest too: a frame sent again while they were held
        # went in behind them, and the signal's times ran back 0.52 s (test_core).
        newest = tracker.newest
        if newest is not None and times[-1] <= newest:
            self.counts["late_samples"] += n
            if self._stalled(tracker, now):
                out += tracker.end_set("end_restart")
                tracker.restart(MotionSignal(s.signal_rate, s.history, s.max_gap, self._width))
                self.counts["timeline_restart"] += 1
            return out
        tracker.behind_since = None
        # One copy to float64 for the usual frame: measured 9.8 -> 1.5 us against zeros, a
        # list index and a multiplication by ones (float32 to float64 is exact either way).
        samples = frame.samples[:, pick]
        if count == self._width:
            motion = samples.astype(np.float64) if scale is None else samples * scale
        else:  # no gyroscope: zeros
            motion = np.zeros((n, self._width))
            motion[:, :count] = samples if scale is None else samples * scale
        if newest is not None and times[0] <= newest:  # overlaps what came before
            keep = accepted(times, newest)
            times, motion = times[keep], motion[keep]
        return out + tracker.on_samples(times, motion, frame.rate)

    def push_prediction(
        self, prediction: Prediction, now: float | None = None
    ) -> list[WorkoutMessage]:
        """One classified window of one device."""
        self._check_time(prediction.window_end, now)
        window = vote(prediction, self._rest, self.settings.max_labels)
        return self._tracker(prediction.device, now).on_vote(window)

    def tick(self, now: float) -> list[WorkoutMessage]:
        """Publish the sets that ended and did not go on; end the sets of devices silent
        for ``idle_timeout``; forget them after ``forget_after`` (their totals too)."""
        out: list[WorkoutMessage] = []
        for device, tracker in list(self.devices.items()):
            silent = now - tracker.last_seen
            if silent > self.settings.forget_after:
                del self.devices[device]
                self.counts["forgotten"] += 1
            elif silent > self.settings.idle_timeout and tracker.busy:
                out += tracker.end_set("end_idle")
            elif tracker.parking.due(now):  # a set that ended and did not go on
                out += tracker.unpark()
        return out

    def tracker_counts(self) -> Counter[str]:
        """Every device's counts summed (sets ended by reason, repetitions refused...)."""
        total: Counter[str] = Counter()
        for tracker in self.devices.values():
            total.update(tracker.counts)
        return total

    def close(self) -> list[WorkoutMessage]:
        """End every set under way (end of a recording, or shutdown)."""
        return [m for tracker in self.devices.values() for m in tracker.end_set("end_close")]

    def _check_time(self, t: float, now: float | None) -> None:
        if now is None:
            return
        if t > now + self.settings.max_clock_skew:
            raise PayloadError("time_in_future", f"stamped {t - now:.3g} s ahead of us")
        if t < now - self.settings.max_age:
            raise PayloadError("time_too_old", f"stamped {now - t:.3g} s ago")

    def _tracker(self, device: str, now: float | None) -> DeviceTracker:
        tracker = self.devices.get(device)
        if tracker is None:
            if len(self.devices) >= self.settings.max_devices:
                raise PayloadError(
                    "too_many_devices", f"already tracking {self.settings.max_devices} devices"
                )
            tracker = self.devices[device] = DeviceTracker(device, self.settings)
        tracker.last_seen = now if now is not None else max(tracker.last_seen, tracker.now)
        return tracker

    @staticmethod
    def _stalled(tracker: DeviceTracker, now: float | None) -> bool:
        """Late samples for STALL_SECONDS of wall time (live only)."""
        if now is None:
            return False
        if tracker.behind_since is None:
            tracker.behind_since = now
        return now - tracker.behind_since >= STALL_SECONDS
