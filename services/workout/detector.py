"""Repetitions found as they happen, set or no set: a turning-point counter on a refitted axis.

While the classifier sees an exercise (or a set is under way) the axis
(:mod:`services.workout.axis`) is fitted again every :data:`REFIT_SECONDS` on
the last :data:`FIT_SECONDS` of signal and the counter
(:mod:`services.workout.counter`) goes on with it: the axis turns smoothly
(half the previous covariance is kept) and keeps its sign, so the counter's
turning points stay valid. So the counter follows the set from getting into
position to its last repetition, and when a set is recognised its first
repetitions are already known. At rest nothing is fitted or counted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from services.workout.axis import fit_axis, still
from services.workout.counter import Cycle, TurnCounter

# s between refits while an exercise is seen or a set is under way; every refit looks for
# the period again: looking every third refit saved 9% of the core's time but a set the
# classifier lost for 10 s of rest no longer joined on (test_core, 2026-12-04)
REFIT_SECONDS = 1.0
FIT_SECONDS = 6.0  # of signal each refit looks at (two or more repetitions)
SAME_PEAK = 0.1  # s: a repetition found again (by a new counter) peaks within this
KEEP_CYCLES = 32  # recent repetitions kept for a set that starts late

History = Callable[[float], tuple[np.ndarray, np.ndarray]]


class Detector:
    """One device's live repetition detector."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.counter: TurnCounter | None = None
        self.cycles: deque[Cycle] = deque(maxlen=KEEP_CYCLES)
        self.refits = 0
        self._fitted_at = -np.inf

    def feed(
        self, times: np.ndarray, y: np.ndarray, history: History, active: bool, in_set: bool
    ) -> list[Cycle]:
        """New grid samples; refit when due. Returns the repetitions they complete."""
        if not len(times):
            return []
        if not active and not in_set:
            self.counter = None  # at rest nothing is counted (and nothing costs)
            self._fitted_at = -np.inf
            return []
        now = float(times[-1])
        found: list[Cycle] = []
        if self.counter is not None:
            found += self.counter.feed(times, y)
        if now - self._fitted_at >= REFIT_SECONDS:
            found += self._refit(now, history)
        fresh = []
        for cycle in found:  # a new counter counts the last seconds again: no repeats
            if not self.cycles or cycle.peak > self.cycles[-1].peak + SAME_PEAK:
                self.cycles.append(cycle)
                fresh.append(cycle)
        return fresh

    def _refit(self, now: float, history: History) -> list[Cycle]:
        """Fit the axis again on the last seconds. A new counter (there was none) counts
        those seconds first: the repetitions before the classifier saw the exercise."""
        self._fitted_at = now
        times, y = history(now - FIT_SECONDS)
        if len(times) < 2 * self.rate:
            return []
        self.refits += 1
        if self.counter is None:
            self.counter = TurnCounter(fit_axis(y, self.rate, None))
            if still(y[: round(self.rate)], self.rate):
                self.counter.rest = y[: round(self.rate)].mean(axis=0)
            return self.counter.feed(times, y)
        if still(y, self.rate):  # a pause keeps the axis (its noise must not turn it)
            self.counter.rest = y[-round(self.rate) :].mean(axis=0)
        else:
            self.counter.refit(fit_axis(y, self.rate, self.counter.axis))
        return []

    def since(self, t: float) -> list[Cycle]:
        """The repetitions that ended at or after ``t``, oldest first."""
        return [c for c in self.cycles if c.end >= t]
