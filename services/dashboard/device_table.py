"""The devices the dashboard tracks: their buffers and workouts, bounded and evicted when idle.

One message of a device at a time: a raw frame, a window, a prediction, a
device status, a ground truth or a ``har workout`` message, already routed by
its topic (:class:`services.dashboard.store.Store` does that, and holds the
lock; this table has none). At most ``max_devices`` are kept: a new one pushes
out the least recently seen, and one silent for ``idle_timeout`` is forgotten
with its workout.
"""

from __future__ import annotations

import numpy as np

from imu_har.protocol.codec import decode_frame
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import DeviceStatus, GroundTruth, Prediction
from services.dashboard.devices import DeviceState, Limits, PlotFrame
from services.dashboard.workouts import WorkoutTrack, parse


class DeviceTable:
    """Per-device state and workouts, bounded by :class:`Limits` (not thread-safe)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.devices: dict[str, DeviceState] = {}
        self.workouts: dict[str, WorkoutTrack] = {}  # har workout's, of known devices only
        self.evicted = 0

    def state(self, device: str, now: float) -> DeviceState:
        """``device``'s state, made (evicting to make room) if it is new; seen ``now``."""
        state = self.devices.get(device)
        if state is None:
            self.evict(now)
            if len(self.devices) >= self.limits.max_devices:
                oldest = min(self.devices.values(), key=lambda s: s.last_seen)
                del self.devices[oldest.device]
                self.workouts.pop(oldest.device, None)
                self.evicted += 1
            state = self.devices[device] = DeviceState(device, self.limits)
        state.last_seen = now
        return state

    def evict(self, now: float) -> None:
        """Forget the devices silent for longer than ``idle_timeout``, with their workouts."""
        limit = self.limits.idle_timeout
        idle = [d for d, s in self.devices.items() if now - s.last_seen > limit]
        for device in idle:
            del self.devices[device]
            self.workouts.pop(device, None)
        self.evicted += len(idle)

    def frame(self, device: str, payload: bytes, now: float) -> None:
        """A raw frame: its samples for the plots, at their sample times."""
        frame = decode_frame(payload)
        if frame.device != device:
            raise PayloadError("device_mismatch", "payload device differs from the topic")
        n = frame.samples.shape[0]
        times = frame.receive_time - (n - 1 - np.arange(n)) / frame.rate
        plot_frame = PlotFrame(times, frame.samples.copy(), frame.channels, frame.units)
        self.state(device, now).add_frame(plot_frame, now)

    def window(self, device: str, payload: bytes, now: float) -> None:
        """A window: only counted."""
        if len(payload) < 4 or payload[1] != ord("W"):
            raise PayloadError("bad_kind", "not a window payload")
        self.state(device, now).windows += 1

    def prediction(self, device: str, payload: bytes, now: float) -> None:
        """A prediction: kept, and judged against the ground truth."""
        prediction = Prediction.from_payload(payload)
        if prediction.device != device:
            raise PayloadError("device_mismatch", "payload device differs from the topic")
        state = self.state(device, now)
        state.predictions.append((now, prediction))
        state.judge(prediction)

    def device_status(self, device: str, payload: bytes, now: float) -> None:
        """The gateway's retained status of the device (empty: cleared, nothing to do)."""
        if not payload:
            return
        self.state(device, now).status = DeviceStatus.from_payload(payload)

    def truth(self, device: str, payload: bytes, now: float) -> None:
        """A ground truth (the simulator's label), in time order."""
        if not payload:
            return
        truth = GroundTruth.from_payload(payload)
        state = self.state(device, now)
        if state.truths and truth.time <= state.truths[-1].time:
            if truth.time == state.truths[-1].time:  # a retained truth seen again: update
                state.truths[-1] = truth
                return
            raise PayloadError("out_of_order", "ground truth older than the last one")
        state.truths.append(truth)

    def workout(self, kind: str, device: str, payload: bytes, now: float) -> bool:
        """A ``har workout`` message (``kind`` workout, rep or set); False for a duplicate."""
        message = parse(kind, device, payload)
        if message is None:  # the retained workout state cleared
            if device in self.workouts:
                self.workouts[device].state = None
            return True
        self.state(device, now)  # a known device: bounded and evicted like every other
        track = self.workouts.setdefault(device, WorkoutTrack())
        return track.add(message)

    def sizes(self) -> dict[str, int]:
        """Element counts of every per-device buffer (for the memory-bound tests)."""
        states, tracks = self.devices.values(), self.workouts.values()
        return {
            "devices": len(self.devices),
            "plot_samples": max((s.plot_samples for s in states), default=0),
            "predictions": max((len(s.predictions) for s in states), default=0),
            "truths": max((len(s.truths) for s in states), default=0),
            "arrivals": max((len(s.frame_arrivals) for s in states), default=0),
            "workouts": len(self.workouts),
            "workout_reps": max((len(w.reps) for w in tracks), default=0),
            "workout_sets": max((len(w.sets) for w in tracks), default=0),
        }
