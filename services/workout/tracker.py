"""One device's workout: when a set starts and ends, its repetitions, their form.

The detector (:mod:`services.workout.detector`) finds repetitions as they
happen whenever the classifier sees an exercise. A set starts when the
classifier recognises one exercise steadily (``start_predictions`` windows in a
row, each at least ``start_probability``) *and* the repetitions since that run
of windows began are periodic: the newest ``start_reps`` alike in swing and
direction and close together (:func:`services.workout.likeness.periodic`;
set-up moves before them differ and are dropped). They are published at once;
from then on every repetition is.

A repetition in a set is not counted when the latest windows steadily call
another exercise and those covering it call it likelier by ``rival_margin``,
when it is unlike the set's latest repetitions
(:func:`services.workout.likeness.alike`), when the windows covering it call it
rest by :data:`REST_MARGIN` more than the exercise, or when it comes after a
pause and they call it rest. Each waits (at most ``form_wait`` s after it is
found) for a window reaching its turning point, so its form is judged on the
windows covering it.

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
from services.workout.likeness import alike, periodic
from services.workout.recount import SetTape, outcome, recount
from services.workout.settings import WorkoutSettings
from services.workout.signal import MotionSignal
from services.workout.totals import Day

LOOK_BACK = 1.5  # s before the first steady window that may hold the set's first repetition
# Measured: the signal's per-call cost dominated at 1,000 wearables; at rest (nothing seen)
# samples are gathered for up to a second (or 16 frames) and pushed at once.
HOLD_SECONDS = 1.0
HOLD_FRAMES = 16
LEVEL_REPS = 5  # a new repetition is compared with the last 5 of its set (accepted or not)
REST_MARGIN = 0.3  # a repetition the windows call rest by this much more is not one
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
    cycles: list[Cycle] = field(default_factory=list)  # accepted
    seen: list[Cycle] = field(default_factory=list)  # the last ones, for what a rep is like
    last_end: float = 0.0  # end of the last repetition (or when the set started)
    tape: SetTape | None = None  # its signal, to count it again when it ends


class DeviceTracker:
    """Sets and repetitions of one device, from its frames and its classifier votes."""

    def __init__(self, device: str, settings: WorkoutSettings) -> None:
        self.device = device
        self.settings = settings
        width = len(settings.channels) + len(settings.gyro_channels)
        self.signal = MotionSignal(settings.signal_rate, settings.history, settings.max_gap, width)
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
        """Raw samples (times (n,), acc (n, 6): accelerometer in g, gyroscope in deg/s)."""
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
        if current is not None and current.tape is not None:
            current.tape.add(grid_t, grid_y)
        cycles = self.detector.feed(
            grid_t, grid_y[:, :3], self._acc_history, exercise is not None, current is not None
        )
        if current is None:
            return self._try_start() if cycles else []
        for cycle in cycles:
            self._accept(cycle)
        out = self._release(self.now)
        if self.now - current.last_end > self.settings.max_pause:
            out += self.end_set("end_pause")
        return out

    def _acc_history(self, since: float) -> tuple[np.ndarray, np.ndarray]:
        times, values = self.signal.history(since)
        return times, values[:, :3]

    def on_vote(self, vote: WindowVote) -> list[WorkoutMessage]:
        """One classified window."""
        self.votes.add(vote)
        out: list[WorkoutMessage] = []
        if self.current is not None:
            if self.current.tape is not None:
                self.current.tape.votes.append(vote)
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
        exercise = steady.exercise if steady is not None else None
        if exercise is None:
            return []
        if self.current is not None and exercise == self.current.exercise:
            return []
        since = max(self.votes.run_start(exercise) - LOOK_BACK, self._used_until)
        cycles = periodic(self.detector.since(since))
        if len(cycles) < s.start_reps:
            self.counts["not_periodic"] += 1
            return []
        out = self.end_set("end_switch") if self.current is not None else []
        number = self.day.next_set(cycles[0].start)
        self.current = OpenSet(exercise, number, last_end=cycles[0].start)
        self.current.tape = SetTape(s.signal_rate, s.history + s.max_set_seconds, self.signal.width)
        self.current.tape.add(*self.signal.history(-np.inf))
        self.current.tape.votes.extend(self.votes.recent)
        out.append(self._state())
        for cycle in cycles:
            self._accept(cycle)
        return out + self._release(self.now)

    # -- repetitions --------------------------------------------------------------------
    def _accept(self, cycle: Cycle) -> None:
        current = self.current
        assert current is not None
        judged = self.votes.judge(current.exercise, cycle.start, cycle.end)
        if judged.rival >= judged.support + self.settings.rival_margin and self._switching():
            self.counts["rival_rep"] += 1  # the classifier saw another exercise
            return
        like = alike(cycle, current.seen)
        current.seen.append(cycle)  # rejected ones too: a set started on set-up moves recovers
        del current.seen[:-LEVEL_REPS]
        if not like:
            self.counts["unlike_rep"] += 1  # a fidget after the set, say
            return
        if judged.rest >= judged.support + REST_MARGIN:
            self.counts["rest_rep"] += 1  # the windows over it call it rest: the set is over
            return
        if judged.rest >= REST_AFTER_PAUSE and self._after_pause(cycle):
            self.counts["rest_rep"] += 1  # moving about once the set is over
            return
        current.cycles.append(cycle)
        current.pending.append(cycle)
        current.last_end = max(current.last_end, cycle.end)
        self._used_until = max(self._used_until, cycle.end + 1e-6)

    def _switching(self) -> bool:
        """The latest windows steadily call another exercise (a moment's confusion of the
        classifier is not a switch: measured, rejecting on it lost a jump per set)."""
        current = self.current
        assert current is not None
        s = self.settings
        steady = self.votes.steady(s.start_predictions, s.start_probability)
        return steady is not None and steady.exercise not in (None, current.exercise)

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
            # Ready once a window reaches the counted turning point (it arrives about when
            # the repetition is found): waiting for one past the repetition's end cost 0.5 s
            # of latency on every repetition.
            judged = self.votes.judge(current.exercise, cycle.start, cycle.end, cycle.peak)
            waited = now >= cycle.detected + self.settings.form_wait
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
        s, reps = self.settings, current.reps
        count = len(reps)
        if reps and current.tape is not None:
            span = reps[0].start - s.recount_before, reps[-1].end + s.recount_after
            again = recount(current.tape, *span, current.exercise)
            found = again.reps if again is not None else None
            self.counts[outcome(found, count)] += 1
            count = found or count
        if reps and count < s.min_set_reps:
            self._forget(current)
        elif reps:
            incorrect = min(count, sum(r.form == "incorrect" for r in reps))
            out.append(
                SetEvent(
                    device=self.device,
                    exercise=current.exercise,
                    set=current.number,
                    reps=count,
                    start=reps[0].start,
                    end=max(reps[-1].end, reps[0].start),
                    incorrect=incorrect,
                    mean_rep_seconds=float(np.mean([r.end - r.start for r in reps])),
                )
            )
            # The day's totals follow the set's count (its repetitions were added live).
            self.day.add(current.exercise, sets=1, reps=count - len(reps))
        out.append(self._state())
        return out

    def _forget(self, current: OpenSet) -> None:
        """A set of fewer than ``min_set_reps`` repetitions is no set (a set-up move or a
        fidget that started one): no set event, its repetitions leave the totals, its number
        is given again."""
        self.counts["short_set"] += 1
        self.day.add(
            current.exercise,
            reps=-len(current.reps),
            incorrect=-sum(r.form == "incorrect" for r in current.reps),
        )
        if self.day.sets == current.number:
            self.day.sets -= 1

    def _state(self) -> WorkoutMessage:
        current = self.current
        if current is None:
            return self.day.state(self.device, None, self.day.sets, 0, self.now)
        return self.day.state(
            self.device, current.exercise, current.number, len(current.reps), self.now
        )
