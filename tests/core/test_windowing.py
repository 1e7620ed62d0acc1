"""The shared windowing math: resampling, sliding, gaps, drops, chunking invariance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imu_har.windowing.clock import DeviceClock
from imu_har.windowing.windows import SMALL_PUSH, DeviceWindower, WindowSpec, cut_windows


def test_uniform_input_gives_exact_raw_slices() -> None:
    values = np.random.default_rng(0).normal(size=(80, 9))
    windows = cut_windows(values, WindowSpec(length=20, hop=5, rate=2.0))
    assert len(windows) == (80 - 20) // 5 + 1
    for i, window in enumerate(windows):
        np.testing.assert_array_equal(window.samples, values[5 * i : 5 * i + 20].astype(np.float32))
        np.testing.assert_array_equal(window.sources, np.arange(5 * i, 5 * i + 20))
        assert window.seq == i


def test_irregular_linear_signal_is_resampled_exactly() -> None:
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.01, 0.03, 400))
    values = np.stack([3.0 * times + 1.0, -2.0 * times], axis=1)
    spec = WindowSpec(length=25, hop=10, rate=50.0, max_gap=1.0)
    windows = cut_windows(values, spec, times)
    assert windows
    for window in windows:
        grid = window.start + np.arange(25) / 50.0
        np.testing.assert_allclose(window.samples[:, 0], 3.0 * grid + 1.0, rtol=1e-6)
        np.testing.assert_allclose(window.samples[:, 1], -2.0 * grid, rtol=1e-6)
        assert window.end == pytest.approx(window.start + 24 / 50.0)


def test_duplicates_and_out_of_order_samples_are_dropped() -> None:
    windower = DeviceWindower(WindowSpec(length=4, hop=1, rate=10.0), 1)
    first = windower.push(np.array([0.0, 0.1, 0.2]), np.array([[0.0], [1.0], [2.0]]))
    again = windower.push(np.array([0.1, 0.2, 0.15]), np.array([[9.0], [9.0], [9.0]]))
    assert again.dropped == 3 and not again.windows and not first.windows
    later = windower.push(np.array([0.3]), np.array([[3.0]]))
    np.testing.assert_array_equal(later.windows[0].samples[:, 0], [0, 1, 2, 3])


def test_a_gap_restarts_and_no_window_spans_it() -> None:
    times = np.concatenate([np.arange(30) / 10.0, 10.0 + np.arange(30) / 10.0])
    values = np.arange(60, dtype=np.float64)[:, None]
    windower = DeviceWindower(WindowSpec(length=10, hop=5, rate=10.0, max_gap=1.0), 1)
    result = windower.push(times, values)
    assert result.gaps == 1
    for window in result.windows:
        assert window.end - window.start == pytest.approx(0.9)
        assert not (window.start < 5.0 < window.end)
    assert len(result.windows) == 2 * ((30 - 10) // 5 + 1)


@given(st.lists(st.integers(1, 9), min_size=1, max_size=80), st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_chunking_never_changes_the_windows(chunks: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = sum(chunks)
    times = np.cumsum(rng.uniform(0.005, 0.05, n))
    times[rng.integers(0, n, 3)] += rng.choice([0.0, 2.0])  # gaps (and a few reorderings after)
    values = rng.normal(size=(n, 3))
    spec = WindowSpec(length=8, hop=3, rate=40.0, max_gap=0.5)
    whole = DeviceWindower(spec, 3).push(times, values).windows
    windower, pieces, at = DeviceWindower(spec, 3), [], 0
    for size in chunks:
        pieces += windower.push(times[at : at + size], values[at : at + size]).windows
        at += size
    assert len(pieces) == len(whole)
    for a, b in zip(whole, pieces, strict=True):
        assert (a.seq, a.start, a.end) == (b.seq, b.start, b.end)
        np.testing.assert_array_equal(a.samples, b.samples)
        np.testing.assert_array_equal(a.sources, b.sources)


@given(st.lists(st.integers(1, 20), min_size=1, max_size=40), st.integers(0, 10_000))
@settings(max_examples=40, deadline=None)
def test_frame_sized_pushes_resample_to_the_bits_of_one_big_push(
    chunks: list[int], seed: int
) -> None:
    """Pushes of up to SMALL_PUSH samples are resampled in Python floats, bigger ones in
    numpy: the windows (and, tracked, their sources) must be the same to the last bit;
    untracked (the live windower) the same samples, every source -1."""
    rng = np.random.default_rng(seed)
    n = 3 * SMALL_PUSH
    times = np.cumsum(rng.uniform(0.005, 0.05, n))
    times[n // 2 :] += 2.0  # one gap: both segments longer than SMALL_PUSH
    times[rng.integers(1, n, 4)] -= 0.03  # duplicates and reorderings, dropped
    values = rng.normal(size=(n, 3))
    spec = WindowSpec(length=8, hop=3, rate=40.0, max_gap=0.5)
    whole = DeviceWindower(spec, 3).push(times, values).windows
    tracked, untracked = DeviceWindower(spec, 3), DeviceWindower(spec, 3, track_sources=False)
    pieces, bare, at, k = [], [], 0, 0
    while at < n:
        size = chunks[k % len(chunks)]
        pieces += tracked.push(times[at : at + size], values[at : at + size]).windows
        bare += untracked.push(times[at : at + size], values[at : at + size]).windows
        at, k = at + size, k + 1
    assert whole and len(pieces) == len(bare) == len(whole)
    for a, b, c in zip(whole, pieces, bare, strict=True):
        assert (a.seq, a.start, a.end) == (b.seq, b.start, b.end) == (c.seq, c.start, c.end)
        np.testing.assert_array_equal(a.samples, b.samples)
        np.testing.assert_array_equal(a.samples, c.samples)
        np.testing.assert_array_equal(a.sources, b.sources)
        assert (c.sources == -1).all()


def test_invalid_spec_is_refused() -> None:
    with pytest.raises(ValueError):
        WindowSpec(length=1, hop=5, rate=50.0)
    with pytest.raises(ValueError):
        WindowSpec(length=20, hop=5, rate=0)


def test_device_clock_anchors_and_resyncs() -> None:
    clock = DeviceClock()
    no_device_time = clock.sample_times(5, 50.0, 100.0, None)
    np.testing.assert_allclose(no_device_time, 100.0 - np.arange(5)[::-1] / 50.0)
    first = clock.sample_times(5, 50.0, 1000.0, 10.0)
    assert first[-1] == pytest.approx(1000.0)
    jittered = clock.sample_times(5, 50.0, 1000.2, 10.1)  # arrives 0.02 s late: keep anchor
    assert jittered[0] == pytest.approx(first[0] + 0.1)
    assert clock.resyncs == 0
    rebooted = clock.sample_times(5, 50.0, 1001.0, 0.0)  # device clock restarted
    assert clock.resyncs == 1 and rebooted[-1] == pytest.approx(1001.0)
