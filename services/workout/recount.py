"""A set counted again when it ends: the whole set at once, non-causally.

The live counter (:mod:`services.workout.detector`) must decide as the signal
comes, one turning point at a time; once a set has ended all of it is known.
:class:`SetTape` keeps the grid signal of the set under way (from the
``history`` seconds before its start, bounded by ``max_set_seconds``) and the
classifier's windows over it, and :func:`recount` counts the set as a whole
(:func:`services.workout.bounds.count_set`): the period and axis from its live
span, from ``recount_before`` seconds before its first repetition to
``recount_after`` seconds after its last, and the repetitions' first and last
found again around it. The set event's ``reps`` is this count; its repetition
events were published live and stay as they were (the service counts how
often the two differ: ``recount_more``, ``recount_fewer``).

Measured on simulated wearers (tuning seeds 1000-1029, 240 sets, the demo
model's predictions): with sets started as in phase 2, within one repetition
68% -> 81% and exact 30% -> 52% from 2.5 s before (1.5 s: 80%, 3.5 s: 79%; to
1 s after: 80%); with sets started on their first repetition 1 s before is
best (80% and 44%; 2.5 s: 76% and 42%). The set's boundaries are the live
tracker's (and 56% exact, 87% within one on the same seeds with the demo model
trained on realistic workouts); finding the first and last repetition again
(:mod:`services.workout.bounds`): 76% and 92%.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from scipy.signal import lfilter

from services.workout.bounds import REACH, SetCount, Track, count_set
from services.workout.evidence import WindowVote

HIGH_PASS_HZ = 0.15  # one pole: takes gravity and the posture's slow drift away
# Units of 0.05 g and 5 deg/s: both sensors move the principal axis alike (the offline
# analysis behind the recipe: either alone, or both in their own units, counted worse).
ACC_UNIT, GYRO_UNIT = 0.05, 5.0
MAX_TAPE_VOTES = 1024  # windows kept with a set: 410 s at the demo model's 0.4 s hop


class SetTape:
    """The grid signal of one set (times (n,), values (n, width)) and the classifier's
    windows over it, bounded."""

    def __init__(self, rate: float, seconds: float, width: int) -> None:
        self.rate = rate
        self._times = np.zeros(0)
        self._values = np.zeros((0, width), dtype=np.float32)
        self._limit = max(8, round(seconds * rate))
        self.overflowed = False
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._size = 0
        self.votes: deque[WindowVote] = deque(maxlen=MAX_TAPE_VOTES)

    def add(self, times: np.ndarray, values: np.ndarray) -> None:
        """Append grid samples; past the limit the tape stops (the set is not recounted)."""
        if self.overflowed or not len(times):
            return
        if self._size + len(times) > self._limit:
            self.overflowed = True
            self._parts = []
            return
        self._parts.append((times.copy(), values.astype(np.float32)))
        self._size += len(times)

    @property
    def extent(self) -> tuple[int, int, bool]:
        """What a count of the tape changes with: samples and windows taken in, overflow."""
        return self._size, len(self.votes), self.overflowed

    def until(self, end: float) -> tuple[np.ndarray, np.ndarray]:
        """The samples kept up to ``end``."""
        if self._parts:
            self._times = np.concatenate([self._times, *(t for t, _ in self._parts)])
            self._values = np.concatenate([self._values, *(v for _, v in self._parts)])
            self._parts = []
        keep = self._times <= end
        return self._times[keep], self._values[keep].astype(np.float64)


def high_pass(values: np.ndarray, rate: float) -> np.ndarray:
    """One-pole high-pass at :data:`HIGH_PASS_HZ` (x minus its exponential average), started
    at the first sample."""
    beta = 1.0 - math.exp(-2 * math.pi * HIGH_PASS_HZ / rate)
    base, _ = lfilter([beta], [1.0, beta - 1.0], values, axis=0, zi=(1 - beta) * values[:1])
    return values - base


def recount(
    tape: SetTape,
    start: float,
    end: float,
    exercise: str | None = None,
    hint: float | None = None,
) -> SetCount | None:
    """The set whose live span (with margins) is ``start``..``end``, counted on the tape
    (None when it overflowed, holds less than two seconds of the span or finds no period
    there). ``exercise``: weigh the tape's windows for it, to find the set's first and last
    repetitions around the span (None: the span's repetitions alone); ``hint``: the live
    counter's period."""
    if tape.overflowed:
        return None
    times, values = tape.until(np.inf)  # all before the span too: the filter settles
    if len(times) < 2:
        return None
    scale = np.ones(values.shape[1])
    scale[:3] /= ACC_UNIT
    scale[3:] /= GYRO_UNIT
    passed = high_pass(values * scale, tape.rate)
    # Only the windows near the span are weighed (a long set's tape holds hundreds).
    near = [w for w in tape.votes if w.end >= start - REACH and w.start <= end + REACH]
    track = Track.of(near, exercise) if exercise is not None and near else None
    return count_set(times, passed, tape.rate, (start, end), track, hint)


def outcome(again: int | None, live: int) -> str:
    """The status counter of a set counted again: ``recount_none`` (no count: the live one
    stands), ``recount_same``, ``recount_more`` or ``recount_fewer``."""
    if not again:
        return "recount_none"
    return "recount_same" if again == live else "recount_more" if again > live else "recount_fewer"
