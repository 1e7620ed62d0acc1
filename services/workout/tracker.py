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
when it is unlike the set's latest repetitions, when the windows covering it
call it rest, or when it comes after a pause and they call it rest
(:func:`services.workout.likeness.refusal`). Each waits (at most ``form_wait``
s after it is found) for a window reaching its turning point, so its form is
judged on the windows covering it.

A set ends when another exercise's set starts, when rest (or another
exercise) is recognised and no repetition came for ``rest_seconds``, or when
no repetition came for ``max_pause``: a pause shorter than that, even one the
classifier calls rest, keeps the set going. A set that ended is parked for
``join_seconds`` (:mod:`services.workout.sets`): a set of the same exercise
starting within that time goes on with it; then it is counted as a whole and
published.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from imu_har.protocol.workout import RepEvent, WorkoutMessage
from services.workout.counter import Cycle
from services.workout.detector import Detector
from services.workout.evidence import Votes, WindowVote
from services.workout.likeness import periodic, refusal
from services.workout.recount import SetTape
from services.workout.sets import OpenSet, Parking
from services.workout.settings import WorkoutSettings
from services.workout.signal import MotionSignal
from services.workout.totals import Day

LOOK_BACK = 1.5  # s before the first steady window that may hold the set's first repetition
# Measured: the signal's per-call cost dominated at 1,000 wearables; at rest (nothing seen)
# samples are gathered for up to a second (or 16 frames) and pushed at once.
HOLD_SECONDS = 1.0
HOLD_FRAMES = 16
ACTIVE_VOTES = 2  # the last windows: any exercise at ACTIVE_PROBABILITY keeps the counter on
ACTIVE_PROBABILITY = 0.4
FINAL = frozenset({"end_restart", "end_idle", "end_close"})  # no set goes on after these


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
        self.parking = Parking(settings.join_seconds)  # a set that ended, if it goes on
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

    @property
    def newest(self) -> float | None:
        """Time of the newest sample taken in (held or on the signal)."""
        return float(self._held[-1][0][-1]) if self._held else self.signal.last_time

    def restart(self, signal: MotionSignal) -> None:
        """A new timeline: the samples held belong to the old one."""
        self.signal, self._held = signal, []

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
        for taped in (current, self.parking.set):
            if taped is not None and taped.tape is not None:
                taped.tape.add(grid_t, grid_y)
        cycles = self.detector.feed(
            grid_t, grid_y[:, :3], self._acc_history, exercise is not None, current is not None
        )
        out = self.unpark() if self.parking.due(self.now) else []
        if current is None:
            return out + self._try_start() if cycles else out
        for cycle in cycles:
            self._accept(cycle)
        out += self._release(self.now)
        if self.now - current.last_end > self.settings.max_pause:
            out += self.end_set("end_pause")
        return out

    def _acc_history(self, since: float) -> tuple[np.ndarray, np.ndarray]:
        times, values = self.signal.history(since)
        return times, values[:, :3]

    def on_vote(self, vote: WindowVote) -> list[WorkoutMessage]:
        """One classified window."""
        self.votes.add(vote)
        for taped in (self.current, self.parking.set):
            if taped is not None and taped.tape is not None:
                taped.tape.votes.append(vote)
        out = self.unpark() if self.parking.due(self.now) else []
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
        self.current = self.parking.joins(exercise, cycles[0].start)
        if self.current is not None:
            self.counts["joined"] += 1  # the set goes on: a stretch the classifier missed
        else:
            if self.parking.set is not None and self.parking.set.exercise == exercise:
                out += self._finish(self.parking.take())  # the same again after a rest
            self.current = self._open(exercise, cycles[0].start)
        out.append(self._state())
        for cycle in cycles:
            self._accept(cycle)
        return out + self._release(self.now)

    def _open(self, exercise: str, start: float) -> OpenSet:
        s = self.settings
        opened = OpenSet(exercise, self.day.next_set(start), last_end=start)
        opened.tape = SetTape(s.signal_rate, s.history + s.max_set_seconds, self.signal.width)
        opened.tape.add(*self.signal.history(-np.inf))
        opened.tape.votes.extend(self.votes.recent)
        return opened

    # -- repetitions --------------------------------------------------------------------
    def _accept(self, cycle: Cycle) -> None:
        current = self.current
        assert current is not None
        reason = refusal(cycle, current, self.votes, self.settings)
        if reason is not None:
            self.counts[reason] += 1
            return
        current.cycles.append(cycle)
        current.pending.append(cycle)
        current.last_end = max(current.last_end, cycle.end)
        self._used_until = max(self._used_until, cycle.end + 1e-6)

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

    @property
    def busy(self) -> bool:
        """A set is under way or parked."""
        return self.current is not None or self.parking.set is not None

    def end_set(self, reason: str = "end_other") -> list[WorkoutMessage]:
        """Close the set under way (its pending repetitions first) and park it; a final
        ``reason`` (:data:`FINAL`) counts and publishes it, and any parked one, at once."""
        current = self.current
        out: list[WorkoutMessage] = []
        if current is not None:
            self.counts[reason] += 1
            out += self._release(self.now, force=True)
            self.current = None
        if reason in FINAL:  # the parked set first: set events in the order of their sets
            out += self._finish(self.parking.take()) + self._finish(current)
        elif current is not None:
            out += self._park(current)
        return [*out, self._state()] if current is not None or out else out

    def _park(self, ended: OpenSet) -> list[WorkoutMessage]:
        """Park a set that ended; the one parked before is published first. A short set of
        another exercise than the parked one is dropped and leaves it parked (a stretch of
        the parked set the classifier called something else)."""
        if not ended.reps:
            return []
        parked = self.parking.set
        if parked is not None and parked.exercise != ended.exercise:
            count, _ = ended.count(self.settings.recount_before, self.settings.recount_after)
            if count < self.settings.min_set_reps:
                self._forget(ended)
                return []
        out = self._finish(self.parking.take())
        self.parking.set = ended
        return out

    def unpark(self) -> list[WorkoutMessage]:
        """Publish the parked set (its window to go on closed) and the state after it."""
        return [*self._finish(self.parking.take()), self._state()]

    def _finish(self, ended: OpenSet | None) -> list[WorkoutMessage]:
        """Count a set as a whole: its set event, or nothing when it is short (dropped)."""
        if ended is None or not ended.reps:
            return []
        s = self.settings
        count, how = ended.count(s.recount_before, s.recount_after)
        self.counts[how] += 1
        if count < s.min_set_reps:
            self._forget(ended)
            return []
        # The day's totals follow the set's count (its repetitions were added live).
        self.day.add(ended.exercise, sets=1, reps=count - len(ended.reps))
        return [ended.event(self.device, count)]

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
