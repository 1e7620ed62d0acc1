"""One device's workout: when a set starts and ends, its repetitions, their form.

The detector (:mod:`services.workout.detector`) finds repetitions as they
happen whenever the classifier sees an exercise. A set starts when the
classifier recognises one exercise steadily (``start_predictions`` windows in a
row, each at least ``start_probability``) *and* the motion since then is
periodic: ``start_reps`` repetitions alike in depth and duration and close
together (:func:`periodic`; a set-up move before them is unlike them and
dropped). They are published at once; from then on every repetition is.

A repetition in a set is not counted when the windows covering it call another
exercise likelier by ``rival_margin``, when it is unlike the set's repetitions
(after three), or when it comes after a pause and the windows call it rest (a
move once the set is over). Each waits (at most ``form_wait`` s after its end)
for a window reaching past its end, so its form is judged on windows covering
all of it.

A set ends when another exercise's set starts, when rest (or another
exercise) is recognised and no repetition came for ``rest_seconds``, or when
no repetition came for ``max_pause``: a pause shorter than that, even one the
classifier calls rest, keeps the set going.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from imu_har.protocol.workout import RepEvent, SetEvent, WorkoutMessage
from services.workout.counter import Cycle, median
from services.workout.detector import Detector
from services.workout.evidence import Votes, WindowVote
from services.workout.settings import WorkoutSettings
from services.workout.signal import MotionSignal
from services.workout.totals import Day

LOOK_BACK = 1.5  # s before the first steady window that may hold the set's first repetition
# Measured: the signal's per-call cost dominated at 1,000 wearables; at rest (nothing seen)
# samples are gathered for up to a second (or 16 frames) and pushed at once.
HOLD_SECONDS = 1.0
HOLD_FRAMES = 16
LEVEL_REPS = 8  # a new repetition is compared with the last 8 of its set
REST_AFTER_PAUSE = 0.6  # after a pause, a repetition the windows call rest is not one
ACTIVE_VOTES = 2  # the last windows: any exercise at ACTIVE_PROBABILITY keeps the counter on
ACTIVE_PROBABILITY = 0.4


@dataclass
class OpenSet:
    """The set under way."""

    exercise: str
    number: int
    reps: list[RepEvent] = field(default_factory=list)
    pending: list[Cycle] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)  # accepted, for what a repetition is like
    last_end: float = 0.0  # end of the last repetition (or when the set started)


class DeviceTracker:
    """Sets and repetitions of one device, from its frames and its classifier votes."""

    def __init__(self, device: str, settings: WorkoutSettings) -> None:
        self.device = device
        self.settings = settings
        self.signal = MotionSignal(settings.signal_rate, settings.history, settings.max_gap)
        self.votes = Votes()
        self.day = Day()
        self.current: OpenSet | None = None
        self.last_seen = 0.0
        self.counts: Counter[str] = Counter()
        self.detector = Detector(settings.signal_rate)
        self._held: list[tuple[np.ndarray, np.ndarray]] = []  # samples at rest, not yet pushed
        self._used_until = -np.inf  # repetitions that ended before this belong to a set
        self.behind_since: float | None = None  # wall time its samples started being late

    @property
    def now(self) -> float:
        """Time of the newest sample (the device's timeline), else of the newest vote."""
        return self.signal.last_time or self.votes.last_end()

    # -- input --------------------------------------------------------------------------
    def on_samples(self, times: np.ndarray, acc: np.ndarray, rate: float) -> list[WorkoutMessage]:
        """Raw accelerometer samples (times (n,), acc (n, 3) in g)."""
        current = self.current
        exercise = current.exercise if current else self._seen()
        self._held.append((times, acc))
        holding = exercise is None and len(self._held) < HOLD_FRAMES
        if holding and times[-1] - self._held[0][0][0] < HOLD_SECONDS:
            return []  # at rest the signal only needs to be up to date within a second
        held, self._held = self._held, []
        if len(held) > 1:
            times = np.concatenate([t for t, _ in held])
            acc = np.concatenate([a for _, a in held])
        grid_t, grid_y = self.signal.push(times, acc, rate)
        cycles = self.detector.feed(
            grid_t,
            grid_y,
            self.signal.history,
            exercise is not None,
            exercise in self.settings.alternating,
            current is not None,
        )
        if current is None:
            return self._try_start() if cycles else []
        for cycle in cycles:
            self._accept(cycle)
        out = self._release(self.now)
        if self.now - current.last_end > self.settings.max_pause:
            out += self.end_set("end_pause")
        return out

    def on_vote(self, vote: WindowVote) -> list[WorkoutMessage]:
        """One classified window."""
        self.votes.add(vote)
        out: list[WorkoutMessage] = []
        if self.current is not None:
            out += self._release(self.now)
            out += self._end_by_votes()
        return out + self._try_start()

    def _seen(self) -> str | None:
        """The exercise the latest windows lean to (the counter runs only then)."""
        recent = list(self.votes.recent)[-ACTIVE_VOTES:]
        tops = [w.top for w in recent if w.top is not None and w.top_p >= ACTIVE_PROBABILITY]
        return tops[-1] if tops else None

    # -- starting a set -----------------------------------------------------------------
    def _try_start(self) -> list[WorkoutMessage]:
        """Start a set (ending the one under way, if of another exercise) when an exercise
        is recognised steadily and the repetitions since then are periodic."""
        s = self.settings
        steady = self.votes.steady(s.start_predictions, s.start_probability)
        if steady is None or steady.exercise is None:
            return []
        if self.current is not None and steady.exercise == self.current.exercise:
            return []
        since = max(steady.since - LOOK_BACK, self._used_until)
        cycles = periodic(self.detector.since(since))
        if len(cycles) < s.start_reps:
            self.counts["not_periodic"] += 1
            return []
        out = self.end_set("end_switch") if self.current is not None else []
        number = self.day.next_set(cycles[0].start)
        self.current = OpenSet(steady.exercise, number, last_end=cycles[0].start)
        out.append(self._state())
        for cycle in cycles:
            self._accept(cycle)
        return out + self._release(self.now)

    # -- repetitions --------------------------------------------------------------------
    def _accept(self, cycle: Cycle) -> None:
        current = self.current
        assert current is not None
        judged = self.votes.judge(current.exercise, cycle.start, cycle.end)
        if judged.rival >= judged.support + self.settings.rival_margin:
            self.counts["rival_rep"] += 1  # the classifier saw another exercise
            return
        if not alike(cycle, current.cycles):
            self.counts["unlike_rep"] += 1  # a fidget after the set, say
            return
        if judged.rest >= REST_AFTER_PAUSE and self._after_pause(cycle):
            self.counts["rest_rep"] += 1  # moving about once the set is over
            return
        current.cycles.append(cycle)
        current.pending.append(cycle)
        current.last_end = max(current.last_end, cycle.end)
        self._used_until = max(self._used_until, cycle.end + 1e-6)

    def _after_pause(self, cycle: Cycle) -> bool:
        """Long after the set's last repetition (a pause of two of them, 3 s at least)."""
        current = self.current
        assert current is not None
        if not current.cycles:
            return False
        seconds = median(c.seconds for c in current.cycles[-LEVEL_REPS:])
        return cycle.start - current.cycles[-1].end > max(3.0, 2 * seconds)

    def _release(self, now: float, force: bool = False) -> list[WorkoutMessage]:
        """Publish pending repetitions whose form can be judged (or waited long enough)."""
        current = self.current
        assert current is not None
        out: list[WorkoutMessage] = []
        while current.pending:
            cycle = current.pending[0]
            judged = self.votes.judge(current.exercise, cycle.start, cycle.end)
            waited = now >= cycle.end + self.settings.form_wait
            if not (force or judged.covered or waited or judged.form == "unknown"):
                break
            current.pending.pop(0)
            rep = RepEvent(
                device=self.device,
                exercise=current.exercise,
                set=current.number,
                rep=len(current.reps) + 1,
                start=max(0.0, cycle.start),
                end=max(0.0, cycle.end),
                form=judged.form,
                confidence=judged.confidence,
            )
            current.reps.append(rep)
            self.day.roll(rep.end)
            self.day.add(current.exercise, reps=1, incorrect=int(rep.form == "incorrect"))
            out += [rep, self._state()]
        return out

    # -- ending a set -------------------------------------------------------------------
    def _end_by_votes(self) -> list[WorkoutMessage]:
        """Rest (or another exercise) recognised, and no repetition for ``rest_seconds``."""
        current = self.current
        assert current is not None
        s = self.settings
        steady = self.votes.steady(s.end_predictions, s.end_probability)
        if steady is None or steady.exercise == current.exercise:
            return []
        if self.now - current.last_end >= s.rest_seconds:
            return self.end_set("end_rest" if steady.exercise is None else "end_other")
        return []

    def end_set(self, reason: str = "end_other") -> list[WorkoutMessage]:
        """Close the set under way (its pending repetitions first); nothing if none."""
        current = self.current
        if current is None:
            return []
        self.counts[reason] += 1
        out = self._release(self.now, force=True)
        self.current = None
        if current.reps:
            reps = current.reps
            incorrect = sum(r.form == "incorrect" for r in reps)
            out.append(
                SetEvent(
                    device=self.device,
                    exercise=current.exercise,
                    set=current.number,
                    reps=len(reps),
                    start=reps[0].start,
                    end=max(reps[-1].end, reps[0].start),
                    incorrect=incorrect,
                    mean_rep_seconds=float(np.mean([r.end - r.start for r in reps])),
                )
            )
            self.day.add(current.exercise, sets=1)
        out.append(self._state())
        return out

    def _state(self) -> WorkoutMessage:
        current = self.current
        if current is None:
            return self.day.state(self.device, None, self.day.sets, 0, self.now)
        return self.day.state(
            self.device, current.exercise, current.number, len(current.reps), self.now
        )


def alike(cycle: Cycle, accepted: list[Cycle]) -> bool:
    """Like the set's repetitions so far (after three): depth relative to the counter's
    levels within 0.5 to 1.9 times their median, duration within 0.4 to 2.2 times theirs."""
    if len(accepted) < 3:
        return True
    recent = accepted[-LEVEL_REPS:]
    depth = median(c.relative for c in recent)
    seconds = median(c.seconds for c in recent)
    return 0.5 * depth <= cycle.relative <= 1.9 * depth and (
        0.4 * seconds <= cycle.seconds <= 2.2 * seconds
    )


def periodic(cycles: list[Cycle]) -> list[Cycle]:
    """The repetitions that belong together, newest last. Leading ones are dropped while
    unlike the newest (depth outside 0.65 to 1.55 times, duration outside 0.55 to 1.8
    times: set-up moves differ in size and timing) or far from the next one (a gap over
    three quarters of their duration plus 1 s). Depths are in g of tilt, comparable
    whatever projection found them."""
    while len(cycles) >= 2:
        first, second, last = cycles[0], cycles[1], cycles[-1]
        mean = 0.5 * (first.seconds + second.seconds)
        if (
            0.65 * last.depth <= first.depth <= 1.55 * last.depth
            and 0.55 * last.seconds <= first.seconds <= 1.8 * last.seconds
            and second.start - first.end <= 0.75 * mean + 1.0
        ):
            break
        cycles = cycles[1:]
    return cycles
