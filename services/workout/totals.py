"""A device's day: set numbers and totals per exercise, reset when the date changes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from imu_har.protocol.workout import MAX_EXERCISES, ExerciseTotals, WorkoutState


def day_of(t: float) -> str:
    """The local calendar day of Unix time ``t`` (YYYY-MM-DD)."""
    return time.strftime("%Y-%m-%d", time.localtime(max(0.0, t)))


@dataclass
class Day:
    """Set numbers and today's totals of one device."""

    date: str = ""
    sets: int = 0  # sets started today (the number of the current or last one)
    totals: dict[str, ExerciseTotals] = field(default_factory=dict)
    refused: int = 0  # repetitions of exercises over MAX_EXERCISES, not in the totals

    def roll(self, t: float) -> None:
        """Start a new day if ``t`` falls on another date than the totals."""
        date = day_of(t)
        if date != self.date:
            self.date, self.sets, self.totals = date, 0, {}

    def next_set(self, t: float) -> int:
        """Number a set that starts at ``t``."""
        self.roll(t)
        self.sets += 1
        return self.sets

    def add(self, exercise: str, reps: int = 0, incorrect: int = 0, sets: int = 0) -> None:
        """Count repetitions or a finished set (bounded: see :data:`MAX_EXERCISES`)."""
        entry = self.totals.get(exercise)
        if entry is None:
            if len(self.totals) >= MAX_EXERCISES:
                self.refused += reps
                return
            entry = self.totals[exercise] = ExerciseTotals()
        entry.sets += sets
        entry.reps += reps
        entry.incorrect += incorrect

    def state(
        self, device: str, exercise: str | None, number: int, reps: int, now: float
    ) -> WorkoutState:
        """The retained state: in a set of ``exercise`` (None: resting) with ``reps`` so far."""
        return WorkoutState(
            device=device,
            state="set" if exercise is not None else "rest",
            exercise=exercise,
            set=number,
            reps=reps,
            date=self.date or day_of(now),
            totals={k: v.model_copy() for k, v in self.totals.items()},
            updated_at=now,
        )
