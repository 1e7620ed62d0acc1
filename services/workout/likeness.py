"""What the repetitions of one set are like: which ones start it, which ones belong to it.

A repetition (:class:`services.workout.counter.Cycle`) has a swing (how far
the signal moved along the axis into its turning point) and a direction (the
3-D accelerometer change of that swing). The repetitions of a set are alike in
both; set-up moves and fidgets are single moves of another size or way
(measured on simulated wearers, docs/workout.md: requiring the first
repetitions to swing the same way as the newest ones raised the share of sets
found from the demo model's predictions that are real sets from 89% to 94%,
and of sit-up sets counted exactly from 48% to 60%).
"""

from __future__ import annotations

from services.workout.counter import Cycle, median
from services.workout.evidence import Votes
from services.workout.sets import OpenSet
from services.workout.settings import WorkoutSettings

ALIKE = (0.4, 2.5)  # ... its swing within these times their median
START_ALIKE = (0.65, 1.55)  # the first repetitions' swings over the newest two's
START_GAP = 4.0  # the distance to the next repetition over the newest spacing
START_SPACING = 4.0  # s: the newest two repetitions at most this far apart (a slow sit-up)
ALIKE_COSINE = 0.7  # ... and its swing (3-D) at most 45 degrees from the latest ones'
START_COSINE = 0.9  # the first repetitions swing (3-D) the same way as the newest
LEVEL_REPS = 5  # a new repetition is compared with the last 5 of its set (accepted or not)
REST_MARGIN = 0.3  # a repetition the windows call rest by this much more is not one
REST_AFTER_PAUSE = 0.6  # after a pause, a repetition the windows call rest is not one


def alike(cycle: Cycle, seen: list[Cycle]) -> bool:
    """Like the set's latest repetitions (after three): its swing within :data:`ALIKE`
    times their median."""
    if len(seen) < 3:
        return True
    depth = median(c.depth for c in seen)
    way = max(cosine(cycle, c) for c in seen[-2:])
    return ALIKE[0] * depth <= cycle.depth <= ALIKE[1] * depth and way >= ALIKE_COSINE


def periodic(cycles: list[Cycle]) -> list[Cycle]:
    """The repetitions that belong together, newest last: leading ones are dropped while
    their swing is unlike the newest two's (outside :data:`START_ALIKE` times their mean:
    set-up moves differ in size) or the next one is far (over :data:`START_GAP` times the
    newest spacing: a move before the set)."""
    if len(cycles) < 2:
        return cycles
    depth = 0.5 * (cycles[-1].depth + cycles[-2].depth)
    spacing = cycles[-1].peak - cycles[-2].peak
    ratio = cycles[-2].depth / max(cycles[-1].depth, 1e-9)
    if spacing > START_SPACING or not START_ALIKE[0] <= ratio <= START_ALIKE[1]:
        return cycles[-1:]
    newest = cycles[-3:]  # alternating sides (lunges): the newest is like the one before last
    if max(cosine(cycles[-1], c) for c in newest[:-1]) < START_COSINE:
        return cycles[-1:]
    while len(cycles) > 2:
        first, second = cycles[0], cycles[1]
        if (
            START_ALIKE[0] * depth <= first.depth <= START_ALIKE[1] * depth
            and second.peak - first.peak <= START_GAP * spacing
            and max(cosine(first, c) for c in cycles[-2:]) >= START_COSINE
        ):
            break
        cycles = cycles[1:]
    return cycles


def cosine(a: Cycle, b: Cycle) -> float:
    """Cosine of the angle between two repetitions' swings (1: the same way)."""
    return abs(sum(x * y for x, y in zip(a.direction, b.direction, strict=True)))


def refusal(cycle: Cycle, current: OpenSet, votes: Votes, settings: WorkoutSettings) -> str | None:
    """Why a repetition found during the set ``current`` is not one of it (None: it is):
    ``rival_rep`` when the latest windows steadily call another exercise and those over it
    call that likelier by ``rival_margin``; ``unlike_rep`` when it is unlike the set's
    latest repetitions (:func:`alike`; it is remembered among them all the same, so a set
    started on set-up moves recovers); ``rest_rep`` when the windows over it call it rest
    by :data:`REST_MARGIN` more than the exercise, or after a pause call it rest."""
    judged = votes.judge(current.exercise, cycle.start, cycle.end)
    if judged.rival >= judged.support + settings.rival_margin and _switching(
        current, votes, settings
    ):
        return "rival_rep"  # the classifier saw another exercise
    like = alike(cycle, current.seen)
    current.seen.append(cycle)
    del current.seen[:-LEVEL_REPS]
    if not like:
        return "unlike_rep"  # a fidget after the set, say
    if judged.rest >= judged.support + REST_MARGIN:
        return "rest_rep"  # the windows over it call it rest: the set is over
    if judged.rest >= REST_AFTER_PAUSE and _after_pause(cycle, current):
        return "rest_rep"  # moving about once the set is over
    return None


def _switching(current: OpenSet, votes: Votes, settings: WorkoutSettings) -> bool:
    """The latest windows steadily call another exercise (a moment's confusion of the
    classifier is not a switch: measured, rejecting on it lost a jump per set)."""
    steady = votes.steady(settings.start_predictions, settings.start_probability)
    return steady is not None and steady.exercise not in (None, current.exercise)


def _after_pause(cycle: Cycle, current: OpenSet) -> bool:
    """Long after the set's last repetition (a pause of two of them, 3 s at least)."""
    if not current.cycles:
        return False
    seconds = median(c.seconds for c in current.cycles[-LEVEL_REPS:])
    return cycle.start - current.cycles[-1].end > max(3.0, 2 * seconds)
