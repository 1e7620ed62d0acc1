"""Simulated workouts with their ground truth: sets, repetitions, each repetition's form.

:func:`play_workout` drives a realistic :class:`~imu_har.sim.simulation.WearableSimulator`
through sets and rests; :func:`random_workout` draws a plausible session. The
truth (:class:`TrueSet`, :class:`TrueRep`) comes from the bout plans: a set
spans its first repetition's start to its last repetition's end, and only
completed repetitions count (partial ones, set-up moves and fidgets do not).
Used by the workout benchmark and tests, never by the services.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imu_har.protocol.workout import split_form
from imu_har.sim.realism import BoutPlan
from imu_har.sim.simulation import ACTIVITIES, LABELS, REST, WearableSimulator, random_profile


@dataclass(frozen=True)
class TrueRep:
    """One completed repetition: times in simulator seconds, form ``correct``/``incorrect``."""

    start: float
    end: float
    form: str


@dataclass(frozen=True)
class TrueSet:
    """One set as it really happened."""

    exercise: str
    reps: tuple[TrueRep, ...]

    @property
    def start(self) -> float:
        """Start of the first repetition."""
        return self.reps[0].start

    @property
    def end(self) -> float:
        """End of the last repetition."""
        return self.reps[-1].end

    @property
    def incorrect(self) -> int:
        """Repetitions done with bad form."""
        return sum(r.form == "incorrect" for r in self.reps)


@dataclass
class WorkoutRecording:
    """Samples (n, 9) at ``rate`` from simulator time ``t0``, scheduled labels, true sets."""

    rate: float
    samples: np.ndarray
    labels: np.ndarray
    sets: list[TrueSet]
    t0: float = 0.0

    @property
    def times(self) -> np.ndarray:
        """Simulator time of every sample."""
        return self.t0 + np.arange(len(self.samples)) / self.rate


def true_set(plan: BoutPlan, labels: Sequence[str] = LABELS) -> TrueSet | None:
    """The set a realistic bout plan holds (None for rest or a bout without repetitions)."""
    if labels[plan.row] == REST or not plan.counted.any():
        return None
    exercise = split_form(labels[plan.row])[0]
    reps = tuple(
        TrueRep(float(s), float(e), "incorrect" if split_form(labels[row])[1] else "correct")
        for s, e, row in zip(
            plan.cycle_start[plan.counted],
            plan.cycle_end[plan.counted],
            plan.cycle_row[plan.counted],
            strict=True,
        )
    )
    return TrueSet(exercise, reps)


def play_workout(
    simulator: WearableSimulator,
    steps: Sequence[tuple[str, float]],
    tail: float = 1.0,
) -> WorkoutRecording:
    """Play ``(label, seconds)`` steps; an exercise step's seconds are ignored: it lasts
    until its planned repetitions are done, plus ``tail`` seconds standing still."""
    if simulator.plan is None and simulator.time == 0 and not steps:
        raise ValueError("nothing to play")
    t0, rate = simulator.time, simulator.rate
    parts, labels, sets = [], [], []
    for label, seconds in steps:
        first, _ = simulator.next_samples(label, 1)
        plan = simulator.plan
        assert plan is not None, "play_workout needs style='realistic'"
        found = true_set(plan)
        if found is not None:
            sets.append(found)
            seconds = found.end + tail - plan.start
        n = max(0, math.ceil(seconds * rate) - 1)
        rest, _ = simulator.next_samples(label, n)
        parts += [first, rest]
        labels.append(np.full(1 + n, label, dtype=object))
    return WorkoutRecording(rate, np.concatenate(parts), np.concatenate(labels), sets, t0)


def random_workout(
    rng: np.random.Generator,
    sets: int = 8,
    exercises: Sequence[str] = ACTIVITIES,
    rest_seconds: tuple[float, float] = (8.0, 25.0),
    same_again: float = 0.4,
    no_rest: float = 0.15,
) -> list[tuple[str, float]]:
    """A session of ``sets`` sets starting and ending at rest: often the same exercise
    again after a rest (either form), now and then straight into another exercise."""
    names = list(exercises)
    labels = [str(rng.choice(names))]
    for _ in range(sets - 1):
        same = [x for x in names if _ex(x) == _ex(labels[-1])]
        others = [x for x in names if _ex(x) != _ex(labels[-1])]
        pick = same if not others or rng.random() < same_again else others
        labels.append(str(rng.choice(pick)))
    steps: list[tuple[str, float]] = [(REST, float(rng.uniform(*rest_seconds)))]
    for k, label in enumerate(labels):
        steps.append((label, 0.0))
        last = k == len(labels) - 1
        if last or _ex(labels[k + 1]) == _ex(label) or rng.random() >= no_rest:
            steps.append((REST, float(rng.uniform(*rest_seconds))))
    return steps


def _ex(label: str) -> str:
    return split_form(label)[0]


def sample_labels(rec: WorkoutRecording) -> np.ndarray:
    """What each sample shows, for training a classifier: a repetition's exercise and form
    from its start to the next one's (so short pauses inside a set stay in the set), and
    ``rest`` elsewhere — set-up moves, fidgets, partial repetitions and rests included."""
    times = rec.times
    out = np.full(len(times), REST, dtype=object)
    for found in rec.sets:
        for k, rep in enumerate(found.reps):
            until = found.reps[k + 1].start if k + 1 < len(found.reps) else rep.end
            label = found.exercise + ("_Incorrect" if rep.form == "incorrect" else "")
            out[(times >= rep.start) & (times < until)] = label
    return out


def workout_recordings(
    n_wearers: int, sets: int = 8, rate: float = 50.0, seed: int = 0, first_session: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Realistic workouts of ``n_wearers`` random wearers for training: per sample its
    session (``first_session`` + wearer), its :func:`sample_labels` label and the
    samples (n, 9). Deterministic for a seed."""
    sessions, labels, samples = [], [], []
    for k in range(n_wearers):
        rng = np.random.default_rng([seed, k])
        sim = WearableSimulator(random_profile(rng), rate=rate, rng=rng, style="realistic")
        rec = play_workout(sim, random_workout(rng, sets=sets))
        sessions.append(np.full(len(rec.samples), first_session + k, dtype=np.int64))
        labels.append(sample_labels(rec))
        samples.append(rec.samples)
    return np.concatenate(sessions), np.concatenate(labels), np.concatenate(samples)
