"""A set under way, and a set that ended but may yet go on.

A classifier that loses an exercise for a few seconds (the demo model calls
stretches of some people's lunges rest, and of squats lunges) cuts a set in
two: each half is counted alone (errors of -3 to -14 repetitions), and a half
of fewer than ``min_set_reps`` is dropped. So a set that ends is *parked*
(:class:`Parking`) for ``join_seconds`` after its last repetition before it is
counted and published: when a set of the same exercise starts within that
time, it is the same set going on (same number, its repetitions numbered on).
A short set of another exercise in between (the misrecognised stretch) is
dropped as before and does not end the parked one.

Measured on simulated wearers (tuning seeds 1000-1029, 240 sets): sets cut
within themselves had 4.9-9.4 s between their halves' repetitions (and two
lunge sets with one or two repetitions a piece, 23-25 s); consecutive true sets
of one exercise had 10.4 s or more (the simulator's shortest rests).

A set counted again (:func:`services.workout.recount.recount`) to fewer than
:data:`FEWEST` of its live repetitions keeps the live count: such a count comes of
a period the live repetitions do not bear out (a push-up set of 9 with 6 live
repetitions was counted 3 and dropped as short).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imu_har.protocol.workout import RepEvent, SetEvent
from services.workout.counter import Cycle
from services.workout.recount import SetTape, outcome, recount

# A parked set is published this long after the join window closes: a set that goes on
# starts on its first repetition after two windows, up to ~3 s after that repetition.
START_DELAY = 3.0
FEWEST = 0.6  # of the live count: a set counted again to fewer keeps the live count


@dataclass
class OpenSet:
    """The set under way (or parked)."""

    exercise: str
    number: int
    reps: list[RepEvent] = field(default_factory=list)
    pending: list[Cycle] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)  # accepted
    seen: list[Cycle] = field(default_factory=list)  # the last ones, for what a rep is like
    last_end: float = 0.0  # end of the last repetition (or when the set started)
    tape: SetTape | None = None  # its signal and windows, to count it again when it ends
    # The last count and what it read: a set of another exercise than the parked one is
    # counted when it ends (is it short?) and again when published; 3-6 ms each.
    counted: tuple[tuple[object, ...], tuple[int, str]] | None = None

    def count(self, before: float, after: float) -> tuple[int, str]:
        """Its repetitions counted as a whole (the live count when that fails), and the
        status counter saying how the two compare; counted again only when what it reads
        changed since (repetitions, or the tape's samples and windows)."""
        key = (len(self.reps), before, after, self.tape.extent if self.tape else None)
        if self.counted is None or self.counted[0] != key:
            self.counted = key, self._count(before, after)
        return self.counted[1]

    def _count(self, before: float, after: float) -> tuple[int, str]:
        live = len(self.reps)
        if not self.reps or self.tape is None:
            return live, outcome(None, live)
        span = self.reps[0].start - before, self.reps[-1].end + after
        peaks = [c.peak for c in self.cycles]
        hint = float(np.median(np.diff(peaks))) if len(peaks) >= 3 else None
        again = recount(self.tape, *span, self.exercise, hint)
        found = again.reps if again is not None else None
        if found is not None and found < FEWEST * live:
            found = None  # a period the live repetitions do not bear out: the live count stands
        return found or live, outcome(found, live)

    def event(self, device: str, count: int) -> SetEvent:
        """The set event of this set, counted ``count`` repetitions."""
        reps = self.reps
        return SetEvent(
            device=device,
            exercise=self.exercise,
            set=self.number,
            reps=count,
            start=reps[0].start,
            end=max(reps[-1].end, reps[0].start),
            incorrect=min(count, sum(r.form == "incorrect" for r in reps)),
            mean_rep_seconds=float(np.mean([r.end - r.start for r in reps])),
        )


class Parking:
    """At most one ended set waiting for its continuation (see the module)."""

    def __init__(self, join_seconds: float) -> None:
        self.join_seconds = join_seconds
        self.set: OpenSet | None = None

    def joins(self, exercise: str, first_start: float) -> OpenSet | None:
        """The parked set, taken back, when a set of ``exercise`` whose first repetition
        starts at ``first_start`` goes on with it; else None."""
        parked = self.set
        if parked is None or parked.exercise != exercise:
            return None
        if first_start - parked.last_end > self.join_seconds:
            return None
        self.set = None
        return parked

    def due(self, now: float) -> bool:
        """A set is parked and its join window closed by ``now``."""
        return self.set is not None and now > self.set.last_end + self.join_seconds + START_DELAY

    def take(self) -> OpenSet | None:
        """The parked set, taken out (None if none)."""
        parked, self.set = self.set, None
        return parked
