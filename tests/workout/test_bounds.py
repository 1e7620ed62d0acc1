"""A set's first and last repetitions found again when it ends (services/workout/bounds.py).

A simulated stretch on the 25 Hz grid: stillness, a set-up move, ten repetitions, a
move after the set, stillness. The live span given to the count misses the first and the
last repetition (the live tracker started late and stopped early); the classifier's
windows call the set-up and the move after the set rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.workout.bounds import Track, _side, count_set
from services.workout.evidence import WindowVote
from services.workout.recount import high_pass

RATE = 25.0
REPS = 10


def stretch(rng: np.random.Generator, resting_peaks: bool) -> tuple[np.ndarray, np.ndarray, list]:
    """Times, six channels (units of the recount: 0.05 g, 5 deg/s), and the true reps."""
    times = np.arange(0, 44.0, 1 / RATE)
    y = np.zeros((len(times), 6))
    reps = []
    start = 10.0
    for _ in range(REPS):
        period = 2.0 * rng.uniform(0.85, 1.15)
        inside = (times >= start) & (times < start + period)
        phase = (times[inside] - start) / period
        depth = 8.0 * rng.uniform(0.8, 1.2)
        y[inside, 0] += depth * (1 - np.cos(2 * np.pi * phase)) / 2
        y[inside, 3] += depth * np.sin(2 * np.pi * phase)
        reps.append((start, start + period))
        start += period
    # a set-up move (one smooth excursion of another size and way) and one after the set
    for centre, size in ((6.0, 14.0), (start + 1.6, -12.0)):
        y[:, 1] += size * np.exp(-0.5 * ((times - centre) / 0.5) ** 2)
        y[:, 0] += 0.4 * size * np.exp(-0.5 * ((times - centre) / 0.5) ** 2)
    if not resting_peaks:
        y[:, 0] *= -1
    y += rng.normal(0, 0.3, y.shape)
    return times, y, reps


def windows(reps: list, exercise: str = "Squat") -> list[WindowVote]:
    """2 s windows every 0.4 s: the exercise over the set, rest elsewhere."""
    out = []
    first, last = reps[0][0], reps[-1][1]
    for end in np.arange(2.0, 44.0, 0.4):
        start = end - 2.0
        share = max(0.0, min(end, last) - max(start, first)) / 2.0
        p = 0.05 + 0.9 * share
        out.append(WindowVote(start, end, {exercise: p}, {}, 1 - p, exercise, p))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("resting_peaks", [True, False])
def test_the_first_and_last_repetitions_are_found_again(seed: int, resting_peaks: bool) -> None:
    rng = np.random.default_rng(seed)
    times, y, reps = stretch(rng, resting_peaks)
    live = (reps[1][0] - 1.0, reps[-2][1] + 0.3)  # the live span missed one at each end
    found = count_set(times, high_pass(y, RATE), RATE, live, Track.of(windows(reps), "Squat"))
    assert found is not None and found.reps == REPS
    assert reps[0][0] - 0.1 <= found.first <= reps[0][1]
    assert reps[-1][0] <= found.last <= reps[-1][1] + 0.1


def test_without_windows_the_live_span_alone_is_counted() -> None:
    rng = np.random.default_rng(4)
    times, y, reps = stretch(rng, True)
    live = (reps[1][0] - 1.0, reps[-2][1] + 0.3)
    found = count_set(times, high_pass(y, RATE), RATE, live, None)
    assert found is not None and REPS - 3 <= found.reps <= REPS - 1


def test_set_up_and_getting_up_moves_the_windows_call_rest_are_not_counted() -> None:
    rng = np.random.default_rng(5)
    times, y, reps = stretch(rng, True)
    wide = (reps[0][0] - 6.0, reps[-1][1] + 3.0)  # the live span took both moves in
    found = count_set(times, high_pass(y, RATE), RATE, wide, Track.of(windows(reps), "Squat"))
    assert found is not None and found.reps == REPS


def test_the_side_where_repetitions_rest_is_not_counted() -> None:
    """A fence of N+1 posts: the resting side's peaks enclose the turning side's N, and
    its end peaks have flat outer flanks (stillness); when the outer flanks fall as far
    as the inner ones, the enclosing side is the one repetitions turn on."""
    when = np.arange(0, 30.0, 1 / RATE)
    period, n = 2.0, 10
    inside = (when >= 5.0) & (when <= 5.0 + n * period)
    resting = np.where(inside, np.cos(2 * np.pi * (when - 5.0) / period), 1.0)
    up = 5.0 + period * np.arange(n + 1)  # peaks of the resting side
    down = 5.0 + period * (np.arange(n) + 0.5)
    half = round(0.5 * period * RATE)
    assert len(_side(resting, when, half, up, down)) == n
    # the same peaks, but the signal falls away outside as deep as inside: count them
    turning = np.cos(2 * np.pi * (when - 5.0) / period)
    turning[~((when >= 4.0) & (when <= 6.0 + n * period))] = -1.0
    assert len(_side(turning, when, half, up, down)) == n + 1


def test_a_period_twice_the_live_counters_is_looked_for_again_below_it() -> None:
    """A push-up set of uneven repetitions with pauses (15 true repetitions, 1.0-1.5 s,
    simulated wearer of seed 5021 at 25 Hz; the grid as the tape held it, high-passed, its
    live span from 2 s in): the autocorrelation's first peak above its bar is at 2.7 s,
    which counted 5. The live counter's repetitions were 1.2 s apart."""
    data = np.load(Path(__file__).parent / "data" / "uneven_pushups.npz")
    times, passed = data["times"].astype(float), data["passed"].astype(float)
    core = (float(data["core"][0]), float(data["core"][1]))
    hint = float(data["hint"][0])
    alone = count_set(times, passed, RATE, core, None)
    assert alone is not None and alone.period > 2 * hint  # the case: a multiple was found
    found = count_set(times, passed, RATE, core, None, hint)
    assert found is not None and abs(found.reps - 15) <= 1
    assert found.period < 1.3 * hint


def test_a_period_near_the_live_counters_is_kept() -> None:
    rng = np.random.default_rng(1)
    times, y, reps = stretch(rng, True)
    live = (reps[1][0] - 1.0, reps[-2][1] + 0.3)
    track = Track.of(windows(reps), "Squat")
    alone = count_set(times, high_pass(y, RATE), RATE, live, track)
    hinted = count_set(times, high_pass(y, RATE), RATE, live, track, hint=1.5)
    assert alone is not None and hinted == alone
