"""A pure-numpy simulator of a chest-worn 9-axis IMU doing exercises: the public API.

Used by the gateway's ``--source sim``, by training tests and the demo model,
and by end-to-end tests. The physics (postures, cadences, sensor model, wearer
profiles, the vectorized :class:`WearableFleet`) lives in
:mod:`imu_har.sim.wearable` and is re-exported here; this module adds the
single-device :class:`WearableSimulator`, exercise schedules and labelled
synthetic datasets. Units are the default ones: g, deg/s, uT. Generating a
stream in chunks gives exactly the same samples as generating it at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from imu_har.protocol.codec import DEFAULT_CHANNELS
from imu_har.sim.realism import BoutPlan, Realism
from imu_har.sim.wearable import ACTIVITIES, LABELS, REST, Style, WearableFleet, label_index
from imu_har.sim.wearers import WearerProfile, random_profile

__all__ = [
    "ACTIVITIES",
    "LABELS",
    "REST",
    "BoutPlan",
    "Realism",
    "Schedule",
    "Style",
    "WearableFleet",
    "WearableSimulator",
    "WearerProfile",
    "label_index",
    "parse_schedule",
    "play_schedule",
    "random_profile",
    "random_schedule",
    "schedule_segments",
    "synthetic_recordings",
]

Schedule = list[tuple[str, float]]


class WearableSimulator:
    """One simulated wearable; consecutive calls continue the same signal.

    ``style="realistic"`` plays realistic sets (:mod:`imu_har.sim.realism`);
    :attr:`plan` is then the current bout's plan (repetition end times, form).
    """

    def __init__(
        self,
        profile: WearerProfile | None = None,
        rate: float = 50.0,
        rng: np.random.Generator | None = None,
        seed: int | None = None,
        style: Style = "steady",
        realism: Realism | None = None,
    ) -> None:
        if rng is not None and seed is None:
            seed = int(rng.integers(0, 2**63 - 1))
        if profile is None:
            profile = random_profile(np.random.default_rng(seed))
        self.profile = profile
        self.rate = float(rate)
        self._fleet = WearableFleet([self.profile], rate, seed, style, realism)

    @property
    def time(self) -> float:
        """Simulated time (s) of the next sample."""
        return self._fleet.time

    @property
    def plan(self) -> BoutPlan | None:
        """The current bout's realistic plan (None in the steady style or before a bout)."""
        return self._fleet.plans[0]

    def next_samples(self, label: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n`` samples: float32 (n, 9) in g, deg/s, uT, and reps (n,) in this bout."""
        samples, reps = self._fleet.next_samples([label], n)
        return samples[0], reps[0]


def parse_schedule(text: str) -> Schedule:
    """Parse ``"Squat:20,rest:5,Lunge:30"`` into a schedule; raises ``ValueError`` if bad."""
    schedule: Schedule = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, sep, seconds = item.rpartition(":")
        if not sep:
            raise ValueError(f"schedule item {item!r} is not label:seconds")
        label_index(label)
        duration = float(seconds)
        if not 0 < duration < 1e6:
            raise ValueError(f"schedule item {item!r} needs a positive duration")
        schedule.append((label, duration))
    if not schedule:
        raise ValueError("schedule is empty")
    return schedule


def random_schedule(
    rng: np.random.Generator,
    labels: Sequence[str] = ACTIVITIES,
    bout_seconds: float | tuple[float, float] = (20.0, 40.0),
    rest_seconds: float | tuple[float, float] = (5.0, 10.0),
) -> Schedule:
    """Every label once in random order, each bout followed by a rest."""

    def draw(spec: float | tuple[float, float]) -> float:
        return float(rng.uniform(*spec)) if isinstance(spec, tuple) else float(spec)

    schedule: Schedule = []
    for i in rng.permutation(len(labels)):
        schedule.append((labels[int(i)], draw(bout_seconds)))
        rest = draw(rest_seconds)
        if rest > 0:
            schedule.append((REST, rest))
    return schedule


def schedule_segments(
    schedule: Schedule, rate: float, loop: bool = False
) -> Iterator[tuple[str, int]]:
    """(label, samples) per bout at ``rate``, rounding so that bout boundaries never drift."""
    elapsed, emitted = 0.0, 0
    while True:
        for label, seconds in schedule:
            elapsed += seconds
            count = round(elapsed * rate) - emitted
            emitted += count
            if count > 0:
                yield label, count
        if not loop:
            return


def play_schedule(
    simulator: WearableSimulator, schedule: Schedule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Play ``schedule`` once: samples (n, 9), labels (n,) str, reps (n,) int."""
    parts, labels, reps = [], [], []
    for label, count in schedule_segments(schedule, simulator.rate):
        samples, rep = simulator.next_samples(label, count)
        parts.append(samples)
        reps.append(rep)
        labels.append(np.full(count, label, dtype=object))
    if not parts:
        return np.zeros((0, 9), np.float32), np.zeros(0, object), np.zeros(0, np.int64)
    return np.concatenate(parts), np.concatenate(labels), np.concatenate(reps)


def synthetic_recordings(
    n_sessions: int,
    seconds_per_activity: float,
    rate: float = 50.0,
    seed: int = 0,
    labels: Sequence[str] = ACTIVITIES,
) -> pa.Table:
    """One recording per (session, activity); each session is a different random wearer.

    Columns: session (int64), activity (str), index (int64, order in the recording),
    time (float64 s), acc_x..mag_z (float32). Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    profiles = [random_profile(rng) for _ in range(n_sessions)]
    n = round(seconds_per_activity * rate)
    pairs = [(s, label) for s in range(n_sessions) for label in labels]
    fleet = WearableFleet([profiles[s] for s, _ in pairs], rate, seed)
    names = [label for _, label in pairs]
    chunk = max(1, 200_000 // max(1, len(pairs)))  # bounds memory; chunking does not change data
    parts = [fleet.next_samples(names, min(chunk, n - i))[0] for i in range(0, n, chunk)]
    samples = np.concatenate(parts, axis=1) if parts else np.zeros((len(pairs), 0, 9), np.float32)
    index = np.tile(np.arange(n, dtype=np.int64), len(pairs))
    columns: dict[str, object] = {
        "session": np.repeat(np.array([s for s, _ in pairs], dtype=np.int64), n),
        "activity": pa.array(np.repeat(np.array([x for _, x in pairs], dtype=object), n)),
        "index": index,
        "time": index / rate,
    }
    flat = samples.reshape(-1, 9)
    for i, name in enumerate(DEFAULT_CHANNELS):
        columns[name] = flat[:, i]
    return pa.table(columns)
