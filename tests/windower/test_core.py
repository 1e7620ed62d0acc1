"""The windower's pure multi-device core, without a broker."""

from __future__ import annotations

import numpy as np
import pytest

from imu_har.protocol.codec import Frame
from imu_har.protocol.errors import PayloadError
from imu_har.windowing.clock import DeviceClock
from imu_har.windowing.windows import WindowSpec, cut_windows
from services.windower.core import Windower


def frames_for(
    device: str, values: np.ndarray, per_frame: int, rate: float = 50.0, t0: float = 1000.0
) -> list[Frame]:
    """Split a recording into frames with device timestamps."""
    out = []
    for seq, start in enumerate(range(0, len(values), per_frame)):
        chunk = values[start : start + per_frame].astype(np.float32)
        out.append(
            Frame(
                device,
                seq,
                t0 + (start + len(chunk) - 1) / rate,
                rate,
                chunk,
                device_time=start / rate,
            )
        )
    return out


def test_frame_by_frame_equals_offline_cut() -> None:
    values = np.random.default_rng(3).normal(size=(500, 9)).astype(np.float32)
    spec = WindowSpec(length=20, hop=5, rate=50.0)
    core = Windower(spec)
    frames = frames_for("d1", values, 7)
    live = [w for f in frames for w in core.push(f)]
    # Offline, the recording carries the per-sample times the recorder stores (DeviceClock).
    clock = DeviceClock()
    times = np.concatenate(
        [clock.sample_times(len(f.samples), f.rate, f.receive_time, f.device_time) for f in frames]
    )
    offline = cut_windows(values, spec, times)
    assert len(live) == len(offline) == (500 - 20) // 5 + 1
    for a, b in zip(live, offline, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
        assert (a.seq, a.start, a.end) == (b.seq, b.start, b.end)
    np.testing.assert_allclose(live[3].samples, values[15:35], atol=1e-5)


def test_devices_are_independent_and_duplicates_counted() -> None:
    core = Windower(WindowSpec(length=10, hop=10, rate=50.0))
    values = np.ones((40, 9), np.float32)
    a_frames, b_frames = frames_for("a", values, 5), frames_for("b", values * 2, 5)
    windows = []
    for fa, fb in zip(a_frames, b_frames, strict=True):
        windows += core.push(fa) + core.push(fb) + core.push(fa)  # fa repeated: duplicate
    assert sorted(w.device for w in windows) == ["a"] * 4 + ["b"] * 4
    assert all((w.samples == (1 if w.device == "a" else 2)).all() for w in windows)
    assert core.counts["duplicate"] == len(a_frames)


def test_channel_selection_and_mismatch() -> None:
    core = Windower(WindowSpec(length=4, hop=4, rate=50.0), channels=("mag_x", "acc_x"))
    values = np.tile(np.arange(9, dtype=np.float32), (8, 1))
    windows = [w for f in frames_for("d", values, 4) for w in core.push(f)]
    assert windows and windows[0].channels == ("mag_x", "acc_x")
    np.testing.assert_array_equal(windows[0].samples[0], [6, 0])
    odd = Frame(
        "d", 99, 2000.0, 50.0, np.ones((2, 2), np.float32), channels=("x", "y"), units=("g", "g")
    )
    with pytest.raises(PayloadError, match="channel_mismatch"):
        core.push(odd)


def test_idle_devices_are_evicted_and_device_count_bounded() -> None:
    core = Windower(WindowSpec(length=4, hop=4, rate=50.0), idle_timeout=10.0, max_devices=50)
    for i in range(50):
        core.push(Frame(f"d{i}", 0, 100.0, 50.0, np.ones((1, 9), np.float32)))
    with pytest.raises(PayloadError, match="too_many_devices"):
        core.push(Frame("one-more", 0, 100.0, 50.0, np.ones((1, 9), np.float32)))
    assert core.evict_idle(now=111.0) and core.devices == 0
    core.push(Frame("one-more", 0, 112.0, 50.0, np.ones((1, 9), np.float32)))
    assert core.devices == 1


def test_reconfigure_resets_state() -> None:
    core = Windower(WindowSpec(length=4, hop=4, rate=50.0))
    core.push(Frame("d", 0, 100.0, 50.0, np.ones((3, 9), np.float32)))
    core.reconfigure(WindowSpec(length=6, hop=2, rate=25.0), core.channels)
    assert core.devices == 0 and core.spec.length == 6
