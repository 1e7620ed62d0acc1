"""The physics of the wearable simulator: a chest-worn 9-axis IMU doing exercises.

Pure numpy (no TensorFlow, bleak or Streamlit), vectorized over wearers by
:class:`WearableFleet`. The public entry point is :mod:`imu_har.sim.simulation`,
which re-exports everything public here and the wearers of
:mod:`imu_har.sim.wearers`, and adds schedules and datasets. The physics is
deliberately simple but consistent (the rotations: :mod:`imu_har.sim.rotations`):

* A body orientation per posture (upright, prone, supine) plus a periodic
  motion at an exercise-typical cadence rotates the sensor frame; the
  accelerometer reads specific force (gravity "up" plus vertical body
  acceleration, or a jump's flight/impact profile) in the sensor frame, the
  gyroscope the angular velocity of that rotation, the magnetometer the earth
  field (with inclination) rotated into the sensor frame.
* Incorrect variants have a distinguishable form fault (sagging hips: other
  pitch and reduced range; jerky partial sit-ups with a neck wobble).
* Each wearer (:class:`WearerProfile`) differs in amplitude, cadence, sensor
  placement, noise, biases and magnetic heading.
* ``style="steady"`` (the default) moves at a smooth cadence from the first to
  the last sample of a bout; ``style="realistic"`` plays sets as people do them
  (set-up moves, uneven repetitions, pauses, partial repetitions, failing form:
  :mod:`imu_har.sim.realism`), with each counted repetition's end time known.

Sensor frame: x along the spine toward the head, z out of the chest, y to the
wearer's left. Units are the default ones: g, deg/s, uT. Every quantity is a
closed-form function of time given the current bout, so generating a stream in
chunks gives exactly the same samples as generating it at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from imu_har.sim import realism as _realism
from imu_har.sim.rotations import UPRIGHT, body_rotation, rotation
from imu_har.sim.wearers import WearerProfile

ACTIVITIES: tuple[str, ...] = (
    "Pushup",
    "Pushup_Incorrect",
    "Squat",
    "Situp",
    "Situp_Incorrect",
    "Jumping",
    "Lunge",
)
REST = "rest"
LABELS: tuple[str, ...] = (*ACTIVITIES, REST)

# Per label: cadence Hz, base pitch deg (0 upright, -90 prone, +90 supine), pitch swing deg,
# alternating roll deg, vertical travel m, waveform sharpness, neck wobble deg, jump flag.
_PARAMS = np.array(
    [
        [0.70, -80.0, 8.0, 0.0, 0.25, 0.3, 0.0, 0.0],  # Pushup
        [0.90, -64.0, 3.0, 0.0, 0.10, 0.3, 0.0, 0.0],  # Pushup_Incorrect: sagging hips
        [0.50, -10.0, -30.0, 0.0, 0.45, 0.5, 0.0, 0.0],  # Squat
        [0.40, 85.0, -60.0, 0.0, 0.05, 0.5, 0.0, 0.0],  # Situp: lying -> sitting
        [0.55, 85.0, -28.0, 0.0, 0.03, 3.0, 9.0, 0.0],  # Situp_Incorrect: jerky, partial
        [2.00, -5.0, 6.0, 0.0, 0.00, 0.3, 2.0, 1.0],  # Jumping
        [0.40, -5.0, -12.0, 10.0, 0.35, 0.5, 0.0, 0.0],  # Lunge: legs alternate
        [0.20, 0.0, 2.0, 0.0, 0.00, 0.1, 1.0, 0.0],  # rest: standing sway
    ]
)
_FREQ, _BASE, _SWING, _ALT, _TRAVEL, _SHARP, _WOBBLE, _JUMP = range(8)
_G = 9.80665
_POSTURE_TAU = 0.6  # s, time constant of posture changes between bouts
_ONSET_TAU = 0.4  # s, time for a new exercise to reach full range
_MOD_DEPTH, _MOD_PERIOD = 0.06, 9.0  # slow cadence variation
_NOISE = np.array([0.02] * 3 + [1.0] * 3 + [0.8] * 3)  # per-channel noise std at level 1
Style = Literal["steady", "realistic"]


def label_index(label: str) -> int:
    """Index of ``label`` in :data:`LABELS`; raises ``ValueError`` for unknown labels."""
    try:
        return LABELS.index(label)
    except ValueError:
        raise ValueError(f"unknown activity {label!r}; known: {', '.join(LABELS)}") from None


class WearableFleet:
    """Many simulated wearables advanced together (vectorized over devices)."""

    def __init__(
        self,
        profiles: Sequence[WearerProfile],
        rate: float = 50.0,
        seed: int | None = 0,
        style: Style = "steady",
        realism: _realism.Realism | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if style not in ("steady", "realistic"):
            raise ValueError(f"unknown simulator style {style!r}")
        self.style = style
        self.realism = realism or _realism.Realism()
        # Realistic plans draw from their own streams: the sensor noise stays as it was.
        plan_seeds = np.random.SeedSequence(seed, spawn_key=(1,)).spawn(len(profiles))
        self._plan_rngs = [np.random.default_rng(s) for s in plan_seeds]
        self.plans: list[_realism.BoutPlan | None] = [None] * len(profiles)
        self.rate = float(rate)
        self.profiles = list(profiles)
        d = len(self.profiles)
        self._rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(d)]
        p = self.profiles
        self._amp = np.array([x.amplitude for x in p])
        self._cad = np.array([x.cadence for x in p])
        self._noise = np.array([x.noise for x in p])[:, None] * _NOISE
        self._mod_phase = np.array([x.phase for x in p])
        self._bias = np.array([[*x.acc_bias, *x.gyro_bias, *x.mag_offset] for x in p])
        self._heading = np.radians([x.heading for x in p])
        self._placement = rotation(*np.radians(np.array([x.placement for x in p]).T))
        incl = np.radians([x.inclination for x in p])
        field = np.array([x.field for x in p])
        self._mag_world = np.stack([field * np.cos(incl), 0 * field, -field * np.sin(incl)], -1)
        self._index = 0  # global sample index of the next sample
        self._label = np.full(d, -1)
        self._bout_start = np.zeros(d)
        self._posture_ref = np.zeros(d)  # base pitch at _posture_time
        self._posture_time = np.zeros(d)

    def __len__(self) -> int:
        return len(self.profiles)

    @property
    def time(self) -> float:
        """Simulated time (s) of the next sample."""
        return self._index / self.rate

    def next_samples(self, labels: str | Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n`` samples of every device doing ``labels`` (one per device, or one for all).

        Returns samples float32 (devices, n, 9) in acc_x..mag_z order and default units,
        and reps completed in the current bout, int (devices, n).
        """
        names = [labels] * len(self) if isinstance(labels, str) else list(labels)
        if len(names) != len(self):
            raise ValueError(f"{len(names)} labels for {len(self)} devices")
        self._switch(np.array([label_index(x) for x in names], dtype=int))
        t = (self._index + np.arange(n)) / self.rate
        self._index += n
        samples = self._sense(t)
        for i, rng in enumerate(self._rngs):
            samples[i] += rng.standard_normal((n, 9)) * self._noise[i]
        if self.style == "realistic":
            reps = np.stack([self._plan(i).reps_at(t) for i in range(len(self))]).astype(np.int64)
        else:
            reps = np.floor(self._phase(t[None, :])).astype(np.int64)
        reps[self._label == len(ACTIVITIES)] = 0
        return samples.astype(np.float32), reps

    def _plan(self, i: int) -> _realism.BoutPlan:
        plan = self.plans[i]
        assert plan is not None, "no bout started"
        return plan

    def _switch(self, new: np.ndarray) -> None:
        """Start a new bout on devices whose label changed; posture eases from where it was."""
        changed = new != self._label
        if not changed.any():
            return
        now = self.time
        if self.style == "realistic":
            self._replan(np.flatnonzero(changed), new, now)
        current = self._base(np.full((len(self), 1), now))[:, 0]
        start = np.where(self._label < 0, _PARAMS[new, _BASE], current)
        self._posture_ref = np.where(changed, start, self._posture_ref)
        self._posture_time = np.where(changed, now, self._posture_time)
        self._bout_start = np.where(changed, now, self._bout_start)
        self._label = new

    def _replan(self, devices: np.ndarray, new: np.ndarray, now: float) -> None:
        """Draw realistic plans for the devices starting a bout; posture goes on smoothly."""
        for i in devices.tolist():
            old = self.plans[i]
            posture = _PARAMS[new[i], _BASE] if old is None else old.base(np.array([now]))[0]
            self.plans[i] = _realism.plan_bout(
                self._plan_rngs[i],
                _PARAMS,
                LABELS,
                int(new[i]),
                len(ACTIVITIES),
                now,
                float(posture),
                float(self._cad[i]),
                self.realism,
            )

    def _realistic(self, t: np.ndarray) -> list[np.ndarray]:
        """Pitch, roll, yaw offset (deg), travel (m), jump force (g), each (devices, n)."""
        parts = [
            _realism.evaluate(self._plan(i), _PARAMS, t[i], float(self._amp[i]))
            for i in range(len(self))
        ]
        return [np.stack(x) for x in zip(*parts, strict=True)]

    def _param(self, column: int) -> np.ndarray:
        return _PARAMS[self._label, column][:, None]

    def _base(self, t: np.ndarray) -> np.ndarray:
        target = self._param(_BASE)
        decay = np.exp(-(t - self._posture_time[:, None]) / _POSTURE_TAU)
        return target + (self._posture_ref[:, None] - target) * decay

    def _phase(self, t: np.ndarray) -> np.ndarray:
        def warp(x: np.ndarray) -> np.ndarray:
            omega = 2 * np.pi / _MOD_PERIOD
            return x - _MOD_DEPTH / omega * np.cos(omega * x + self._mod_phase[:, None])

        freq = self._param(_FREQ) * self._cad[:, None]
        return np.maximum(freq * (warp(t) - warp(self._bout_start[:, None] + 0 * t)), 0.0)

    def _kinematics(self, t: np.ndarray) -> tuple[np.ndarray, ...]:
        """Pitch, roll, yaw (rad) and vertical displacement (m), each (devices, n)."""
        if self.style == "realistic":
            pitch, roll, yaw, travel, _ = self._realistic(t)
            yaw = yaw + np.degrees(self._heading)[:, None]
            return np.radians(pitch), np.radians(roll), np.radians(yaw), travel
        phase = self._phase(t)
        onset = 1 - np.exp(-(t - self._bout_start[:, None]) / _ONSET_TAU)
        amp = self._amp[:, None] * onset
        sharp = self._param(_SHARP)
        wave = 0.5 * (1 - np.tanh(sharp * np.cos(2 * np.pi * phase)) / np.tanh(sharp))
        side = np.where(np.floor(phase) % 2 == 0, 1.0, -1.0)
        wobble = self._param(_WOBBLE) * amp * np.sin(4 * np.pi * phase) * wave
        pitch = self._base(t) + self._param(_SWING) * amp * wave
        roll = self._param(_ALT) * amp * wave * side + wobble
        yaw = np.degrees(self._heading)[:, None] + 0.6 * wobble
        travel = -self._param(_TRAVEL) * amp * wave
        return np.radians(pitch), np.radians(roll), np.radians(yaw), travel

    def _orientation(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pitch, roll, yaw, travel = self._kinematics(t)
        body = body_rotation(pitch, roll, yaw) @ UPRIGHT
        return body @ self._placement[:, None], travel

    def _sense(self, t: np.ndarray) -> np.ndarray:
        h = 0.25 / self.rate
        grid = np.broadcast_to(t, (len(self), t.size))
        rot, travel = self._orientation(grid)
        rot_before, travel_before = self._orientation(grid - h)
        rot_after, travel_after = self._orientation(grid + h)
        lift = (travel_after - 2 * travel + travel_before) / (h * h) / _G
        up = 1.0 + lift + self._jump(grid)
        force = np.zeros((*grid.shape, 3))
        force[..., 2] = up
        acc = (np.swapaxes(rot, -1, -2) @ force[..., None])[..., 0]
        delta = np.swapaxes(rot_before, -1, -2) @ rot_after
        skew = (delta - np.swapaxes(delta, -1, -2)) / 2
        omega = np.stack([skew[..., 2, 1], skew[..., 0, 2], skew[..., 1, 0]], -1) / (2 * h)
        mag = (np.swapaxes(rot, -1, -2) @ self._mag_world[:, None, :, None])[..., 0]
        out = np.concatenate([acc, np.degrees(omega), mag], axis=-1)
        return out + self._bias[:, None, :]

    def _jump(self, t: np.ndarray) -> np.ndarray:
        """Extra vertical specific force (g) of jumping: push-off, flight at 0 g, landing impact."""
        if self.style == "realistic":
            return self._realistic(t)[4]
        phase = self._phase(t) % 1.0
        contact = 0.4
        push = np.where(phase < contact, np.pi / (2 * contact) * np.sin(np.pi * phase / contact), 0)
        dist = np.minimum(phase, 1 - phase)
        impact = 1.2 * np.exp(-((dist / 0.025) ** 2))
        onset = 1 - np.exp(-(t - self._bout_start[:, None]) / _ONSET_TAU)
        scale = self._param(_JUMP) * onset * np.sqrt(self._amp[:, None])
        return scale * (push + impact - 1.0 - 1.2 * 0.025 * np.sqrt(np.pi))
