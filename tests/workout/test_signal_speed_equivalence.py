"""The fast paths of the signal against plain references (the per-frame cost work).

:class:`MotionSignal` finds its bins on Python lists, reduces straight into a
preallocated array, smooths a frame with one matrix product and reads its ring
buffer with slices. These tests hold it to slow, obvious versions: every bin's
mean, empty bins interpolated, the exponential filter as a recursion, and the
history as a plain list of everything written.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from services.workout.signal import GRID_TAU, MotionSignal

GRID = 25.0


def reference_grid(
    times: np.ndarray, acc: np.ndarray, sizes: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """One timeline's grid the slow way (every bin but the last, which is still open),
    pushed in pieces of ``sizes``: the bins of the first push that completes any are
    taken as they are, their empty ones not filled (as the signal has always done)."""
    origin = math.floor(times[0] * GRID) / GRID
    bins = ((times - origin) * GRID).astype(np.int64)
    keys = np.unique(bins)[:-1]
    means = np.array([acc[bins == k].mean(axis=0) for k in keys])
    hi, k = 0, 0
    while len(np.unique(bins[:hi])) < 2:
        hi, k = hi + sizes[k % len(sizes)], k + 1
    first = np.unique(bins[:hi])[:-1]
    full = np.concatenate((first, np.arange(first[-1] + 1, keys[-1] + 1)))
    filled = np.stack([np.interp(full, keys, means[:, c]) for c in range(acc.shape[1])], 1)
    alpha = 1.0 - math.exp(-1.0 / (GRID * GRID_TAU))
    smooth = np.empty_like(filled)
    smooth[0] = filled[0]
    for i in range(1, len(filled)):
        smooth[i] = alpha * filled[i] + (1 - alpha) * smooth[i - 1]
    return origin + (full + 0.5) / GRID, smooth


def session(rate: float, seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy motion (n, 6) at ``rate`` starting at a Unix-like time."""
    rng = np.random.default_rng(seed)
    times = 1.79e9 + np.arange(round(seconds * rate)) / rate
    acc = np.sin(np.outer(times - times[0], [1.0, 2.0, 3.0, 0.5, 0.7, 1.1])) + rng.normal(
        0, 0.02, (len(times), 6)
    )
    return times, acc


def pieces(
    times: np.ndarray, acc: np.ndarray, sizes: list[int]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The samples in pieces of the given sizes (cycled)."""
    lo, k = 0, 0
    while lo < len(times):
        hi = lo + sizes[k % len(sizes)]
        yield times[lo:hi], acc[lo:hi]
        lo, k = hi, k + 1


def push_in_pieces(
    signal: MotionSignal, times: np.ndarray, acc: np.ndarray, sizes: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Push in pieces of the given sizes (cycled); the grid returned, joined."""
    grids = [signal.push(t, a, 0.0) for t, a in pieces(times, acc, sizes)]
    return np.concatenate([t for t, _ in grids]), np.concatenate([y for _, y in grids])


@pytest.mark.parametrize("rate", [12.5, 25.0, 50.0, 200.0])
@pytest.mark.parametrize("sizes", [[13], [1], [13 * 16, 13, 5, 40], [1000]])
def test_the_grid_is_the_slow_grid(rate: float, sizes: list[int]) -> None:
    """Frames of 13 samples, single samples, held frames (up to 16 at once, 208 samples:
    several smoothing blocks), a whole recording: the bins, gaps and smoothing agree."""
    times, acc = session(rate, 20.0, seed=int(rate))
    grid_t, grid_y = push_in_pieces(MotionSignal(GRID, 12.0, 1.0, 6), times, acc, sizes)
    want_t, want_y = reference_grid(times, acc, sizes)
    np.testing.assert_array_equal(grid_t, want_t)
    np.testing.assert_allclose(grid_y, want_y, rtol=0, atol=1e-12)


def test_lost_samples_leave_empty_bins_that_are_interpolated() -> None:
    times, acc = session(50.0, 10.0, seed=3)
    keep = np.ones(len(times), bool)
    keep[100:120] = keep[300:302] = False  # 0.4 s and 0.04 s lost (under max_gap)
    times, acc = times[keep], acc[keep]
    grid_t, grid_y = push_in_pieces(MotionSignal(GRID, 12.0, 1.0, 6), times, acc, [13])
    want_t, want_y = reference_grid(times, acc, [13])
    np.testing.assert_array_equal(grid_t, want_t)
    np.testing.assert_allclose(grid_y, want_y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sizes", [[13], [13 * 16], [1000]])
def test_history_is_the_last_samples_written_and_a_copy(sizes: list[int]) -> None:
    """The ring (12 s: 300 grid samples) read across its wrap, and after pushes longer
    than itself; what it returns does not change when the ring is written again."""
    times, acc = session(50.0, 40.0, seed=4)
    signal = MotionSignal(GRID, 12.0, 1.0, 6)
    written_t: list[np.ndarray] = []
    written_y: list[np.ndarray] = []
    for piece_t, piece_y in pieces(times, acc, sizes):
        grid_t, grid_y = signal.push(piece_t, piece_y, 50.0)
        written_t.append(grid_t)
        written_y.append(grid_y)
        all_t, all_y = np.concatenate(written_t)[-300:], np.concatenate(written_y)[-300:]
        for since in (-np.inf, all_t[-1] - 6.0 if len(all_t) else 0.0):
            got_t, got_y = signal.history(since)
            np.testing.assert_array_equal(got_t, all_t[all_t >= since])
            np.testing.assert_array_equal(got_y, all_y[all_t >= since])
    kept_t, kept_y = signal.history(-np.inf)
    before_t, before_y = kept_t.copy(), kept_y.copy()
    signal.push(times[-1] + 0.02 + np.arange(100) / 50.0, acc[:100], 50.0)
    np.testing.assert_array_equal(kept_t, before_t)
    np.testing.assert_array_equal(kept_y, before_y)


def test_a_restart_keeps_only_the_new_timeline() -> None:
    times, acc = session(50.0, 8.0, seed=5)
    signal = MotionSignal(GRID, 12.0, 1.0, 6)
    push_in_pieces(signal, times, acc, [13])
    later = times + 20.0  # a gap of 12 s: a new timeline
    grid_t, grid_y = push_in_pieces(signal, later, acc, [13])
    got_t, got_y = signal.history(-np.inf)
    assert signal.restarts == 1
    np.testing.assert_array_equal(got_t, grid_t)
    np.testing.assert_array_equal(got_y, grid_y)
