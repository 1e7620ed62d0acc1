"""Repetitions found as they happen, set or no set: a counter that refits itself.

While the classifier sees an exercise (or a set is under way) the projection
and levels are fitted again every :data:`REFIT_SECONDS` on the last
:data:`FIT_SECONDS` of signal (from where the latest posture began), by
counting that stretch from scratch (:func:`services.workout.counter.analyse`);
the new counter carries on live. So the counter is aligned with the
repetitions within a repetition or two of their start — after getting into
position, whatever the set-up moves were — and when a set is recognised its
first repetitions are already known. Repetitions found again by a refit are
not reported twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from services.workout.counter import Cycle, RepCounter, analyse

REFIT_SECONDS = 1.5  # between refits while an exercise is seen (a set under way: x5)
FIT_SECONDS = 6.0  # of signal each refit counts
IN_SET_REFITS = 5  # x REFIT_SECONDS while a set's repetitions keep coming
IDLE_SECONDS = 2.5  # no repetition this long in a set: refit as often as outside one
KEEP_CYCLES = 32  # recent repetitions kept for a set that starts late

History = Callable[[float], tuple[np.ndarray, np.ndarray]]


class Detector:
    """One device's live repetition detector."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.counter: RepCounter | None = None
        self.cycles: deque[Cycle] = deque(maxlen=KEEP_CYCLES)
        self.refits = 0
        self._fitted_at = -np.inf
        self._alternating = False

    @property
    def armed(self) -> bool:
        """A repetition is under way."""
        return self.counter is not None and self.counter.armed

    def feed(
        self,
        times: np.ndarray,
        y: np.ndarray,
        history: History,
        active: bool,
        alternating: bool,
        in_set: bool,
    ) -> list[Cycle]:
        """New grid samples; refit first when due. Returns the repetitions they complete."""
        if not len(times):
            return []
        now = float(times[-1])
        found: list[Cycle] = []
        if self.counter is not None:
            found += self.counter.feed(times, y)
        counting = bool(self.cycles) and now - self.cycles[-1].detected < IDLE_SECONDS
        due = REFIT_SECONDS * (IN_SET_REFITS if in_set and counting else 1)
        if active and (now - self._fitted_at >= due or alternating != self._alternating):
            found += self._refit(now, history, alternating, in_set)
        elif not active and not in_set:
            self.counter = None  # at rest nothing is counted (and nothing costs)
        fresh = []
        for cycle in sorted(found, key=lambda c: c.end):
            if self._is_new(cycle):
                self.cycles.append(cycle)
                fresh.append(cycle)
        return fresh

    def _refit(self, now: float, history: History, alternating: bool, in_set: bool) -> list[Cycle]:
        """Count the last seconds again; keep the new counter unless it finds fewer
        repetitions there than the live one did (a refit on a bad stretch must not break
        a counter that works)."""
        changed = alternating != self._alternating
        self._fitted_at, self._alternating = now, alternating
        times, y = history(now - FIT_SECONDS)
        if len(times) < 2 * self.rate:
            return []
        keep = in_set and self.counter is not None and not changed  # the set's sense of home
        like = self.counter.projection if keep and self.counter is not None else None
        counter, cycles = analyse(times, y, self.rate, alternating, like)
        known = sum(1 for c in self.cycles if c.end >= times[0])
        if self.counter is not None and not changed and len(cycles) < known:
            return []
        self.counter = counter
        self.refits += 1
        return cycles

    def _is_new(self, cycle: Cycle) -> bool:
        """After the last repetition reported (a refit counts the last seconds again and
        may place a known repetition a little differently): it must not start before the
        last one ended, give or take a quarter of the shorter of the two."""
        if not self.cycles:
            return True
        last = self.cycles[-1]
        return cycle.start >= last.end - 0.25 * min(last.seconds, cycle.seconds)

    def since(self, t: float) -> list[Cycle]:
        """The repetitions that ended at or after ``t``, oldest first."""
        return [c for c in self.cycles if c.end >= t]
