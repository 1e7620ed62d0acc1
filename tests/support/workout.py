"""Simulated workouts for the workout service's tests: frames and oracle predictions.

A realistic simulated session (imu_har.sim.workouts) becomes the frames the
gateway would send and the predictions a perfect classifier would make: each
window votes for the label the wearer is really doing at its middle (the
repetition's own form when it falls in one), with probability ``sure``.
"""

from __future__ import annotations

import numpy as np

from imu_har.protocol.codec import DEFAULT_CHANNELS, Frame
from imu_har.protocol.messages import Prediction
from imu_har.sim.realism import Realism
from imu_har.sim.simulation import ACTIVITIES, REST, WearableSimulator, WearerProfile
from imu_har.sim.workouts import WorkoutRecording, play_workout
from imu_har.windowing.windows import WindowSpec, cut_windows
from training.reps import frames_of

T0 = 1_790_000_000.0
LABELS = (*ACTIVITIES, REST)
WINDOW = WindowSpec(25, 5, 12.5)  # the demo model's windows: 2 s every 0.4 s


def session(
    steps: list[tuple[str, float]],
    rate: float = 50.0,
    seed: int = 0,
    profile: WearerProfile | None = None,
    realism: Realism | None = None,
) -> WorkoutRecording:
    """Play ``steps`` on a realistic simulated wearer."""
    sim = WearableSimulator(
        profile or WearerProfile(), rate=rate, seed=seed, style="realistic", realism=realism
    )
    return play_workout(sim, steps)


def frames(device: str, rec: WorkoutRecording, t0: float = T0) -> list[Frame]:
    """The recording as 13-sample frames (one BLE notification each), from ``t0``."""
    return list(frames_of(device, t0 + rec.times, rec.samples.astype(np.float64), rec.rate))


def true_label(rec: WorkoutRecording, t: float) -> str:
    """What the wearer does at simulator time ``t`` (a repetition's own form)."""
    for s in rec.sets:
        for r in s.reps:
            if r.start <= t <= r.end:
                return s.exercise + ("_Incorrect" if r.form == "incorrect" else "")
    i = int(np.clip(round((t - rec.t0) * rec.rate), 0, len(rec.labels) - 1))
    return str(rec.labels[i])


def oracle(
    device: str, rec: WorkoutRecording, sure: float = 0.9, t0: float = T0
) -> list[Prediction]:
    """One prediction per window, as a classifier that knows the truth would make it."""
    windows = cut_windows(rec.samples[:, :1].astype(np.float64), WINDOW, t0 + rec.times)
    out = []
    for w in windows:
        label = true_label(rec, (w.start + w.end) / 2 - t0)
        rest = (1.0 - sure) / (len(LABELS) - 1)
        probs = {name: (sure if name == label else rest) for name in LABELS}
        out.append(
            Prediction(
                device=device,
                window_seq=w.seq,
                window_start=w.start,
                window_end=w.end,
                label=label,
                confidence=sure,
                probabilities=probs,
                smoothed_label=label,
                model="oracle",
                model_version="0",
                latency_ms=1.0,
            )
        )
    return out


__all__ = ["DEFAULT_CHANNELS", "LABELS", "T0", "frames", "oracle", "session", "true_label"]
