"""What the classifier says, per window: which exercise, how sure, which form.

A :class:`Prediction` is checked (bounded, known-shaped probabilities) and
reduced to a :class:`WindowVote`: the probabilities grouped by exercise (both
forms of ``<X>`` and ``<X>_Incorrect`` are ``<X>``), the probability of rest,
and the form split. :class:`Votes` keeps a device's recent ones and answers
the two questions the tracker asks: is one exercise recognised steadily, and
what do the windows covering a repetition say about it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import Prediction
from imu_har.protocol.workout import Form, check_exercise, split_form

MAX_VOTES = 64  # windows kept per device: 25 s at the demo model's 0.4 s hop
RUN_SUPPORT = 0.25  # a window this sure of an exercise continues its run (it began there)
SUM_TOLERANCE = 0.05  # softmax outputs sum to one; a little rounding is fine


@dataclass(frozen=True)
class WindowVote:
    """One window's classification, grouped by exercise."""

    start: float
    end: float
    exercises: dict[str, float]  # probability per exercise (both forms summed)
    incorrect: dict[str, float]  # probability of the incorrect form, for exercises that have one
    rest: float
    top: str | None  # most probable exercise (None: rest is more probable than any)
    top_p: float

    def support(self, exercise: str) -> float:
        """Probability of ``exercise`` (either form)."""
        return self.exercises.get(exercise, 0.0)


def vote(prediction: Prediction, rest_labels: frozenset[str], max_labels: int) -> WindowVote:
    """Check a prediction's probabilities and group them; :class:`PayloadError` if unusable."""
    probs = prediction.probabilities
    if not probs or len(probs) > max_labels:
        raise PayloadError("too_many_labels", f"{len(probs)} classes (at most {max_labels})")
    if prediction.window_end < prediction.window_start:
        raise PayloadError("bad_time", "window ends before it starts")
    total = 0.0
    exercises: dict[str, float] = {}
    incorrect: dict[str, float] = {}
    rest = 0.0
    for label, p in probs.items():
        if not 0.0 <= p <= 1.0:
            raise PayloadError("bad_probabilities", f"probability {p!r} of {label[:64]!r}")
        total += p
        if label in rest_labels:
            rest += p
            continue
        name, wrong = split_form(label)
        try:
            check_exercise(name)
        except ValueError:
            raise PayloadError("bad_label", f"class {label[:64]!r} is not a usable name") from None
        exercises[name] = exercises.get(name, 0.0) + p
        if wrong:
            incorrect[name] = incorrect.get(name, 0.0) + p
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise PayloadError("bad_probabilities", f"probabilities sum to {total:.3f}, not 1")
    for name in incorrect:
        exercises.setdefault(name, incorrect[name])
    top = max(exercises, key=exercises.__getitem__) if exercises else None
    top_p = exercises[top] if top is not None else 0.0
    if top is not None and top_p < rest:
        top = None
    return WindowVote(
        prediction.window_start, prediction.window_end, exercises, incorrect, rest, top, top_p
    )


@dataclass(frozen=True)
class Steady:
    """Consecutive windows agree: on ``exercise`` (None: rest), since ``since``."""

    exercise: str | None
    since: float


@dataclass(frozen=True)
class Judgement:
    """What the windows covering a repetition say."""

    support: float  # mean probability of the exercise (either form)
    rival: float  # mean probability of the likeliest other exercise (rest is none)
    rest: float  # mean probability of rest
    form: Form  # correct, incorrect or unknown
    confidence: float  # mean probability of the exercise in that form (either when unknown)
    covered: bool  # a window reaching past ``ready`` (default: the repetition's end) arrived


class Votes:
    """A device's recent window votes, oldest first."""

    def __init__(self) -> None:
        self.recent: deque[WindowVote] = deque(maxlen=MAX_VOTES)

    def add(self, window: WindowVote) -> None:
        """Keep a vote (votes out of order are kept in order)."""
        if self.recent and window.end < self.recent[-1].end:
            ordered = sorted([*self.recent, window], key=lambda w: w.end)
            self.recent = deque(ordered[-MAX_VOTES:], maxlen=MAX_VOTES)
        else:
            self.recent.append(window)

    def steady(self, count: int, probability: float) -> Steady | None:
        """What the last ``count`` votes agree on with at least ``probability`` each: one
        exercise, or rest (``exercise`` None); None when they do not agree."""
        last = list(self.recent)[-count:]
        if len(last) < count or len({w.top for w in last}) != 1:
            return None
        top = last[0].top
        if top is None:
            sure = all(w.rest >= probability for w in last)
        else:
            sure = all(w.top_p >= probability for w in last)
        return Steady(top, last[0].start) if sure else None

    def run_start(self, exercise: str) -> float:
        """Start of the oldest window of the newest run of windows giving ``exercise`` at
        least :data:`RUN_SUPPORT` (the latest window's end when the newest does not): where
        the exercise began, not where its last few windows began."""
        start = self.last_end()
        for w in reversed(self.recent):
            if w.support(exercise) < RUN_SUPPORT:
                break
            start = w.start
        return start

    def last_end(self) -> float:
        """End of the newest window (0 when none)."""
        return self.recent[-1].end if self.recent else 0.0

    def judge(
        self, exercise: str, start: float, end: float, ready: float | None = None
    ) -> Judgement:
        """Weigh every window overlapping [start, end] by the share of the span it covers."""
        ready = end if ready is None else ready
        weight = support = wrong = rival = rest = 0.0
        has_form = covered = False
        for w in reversed(self.recent):
            if w.end < start:
                break
            overlap = min(w.end, end) - max(w.start, start)
            if overlap <= 0:
                continue
            share = overlap / max(w.end - w.start, 1e-6)
            weight += share
            support += share * w.support(exercise)
            rest += share * w.rest
            rival += share * max((p for x, p in w.exercises.items() if x != exercise), default=0)
            if exercise in w.incorrect:
                has_form = True
                wrong += share * w.incorrect[exercise]
            covered = covered or w.end >= ready
        if weight <= 0:
            return Judgement(0.0, 0.0, 0.0, "unknown", 0.0, False)
        support, wrong, rival, rest = (x / weight for x in (support, wrong, rival, rest))
        if not has_form or support <= 0:
            return Judgement(support, rival, rest, "unknown", support, covered)
        form: Form = "incorrect" if wrong > support - wrong else "correct"
        confidence = wrong if form == "incorrect" else support - wrong
        return Judgement(support, rival, rest, form, min(1.0, confidence), covered)
