"""The windower's pure multi-device core, without a broker."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from imu_har.protocol.codec import Frame
from imu_har.protocol.errors import PayloadError
from imu_har.windowing.clock import DeviceClock
from imu_har.windowing.windows import WindowSpec, cut_windows
from services.windower.core import Windower
from services.windower.settings import WindowerSettings


def windower(**settings: object) -> Windower:
    """A core built from settings, as the service builds it."""
    return Windower(WindowerSettings(**settings))  # type: ignore[arg-type]


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
    core = windower(length=20, hop=5, rate=50.0)
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
    core = windower(length=10, hop=10, rate=50.0)
    values = np.ones((40, 9), np.float32)
    a_frames, b_frames = frames_for("a", values, 5), frames_for("b", values * 2, 5)
    windows = []
    for fa, fb in zip(a_frames, b_frames, strict=True):
        windows += core.push(fa) + core.push(fb) + core.push(fa)  # fa repeated: duplicate
    assert sorted(w.device for w in windows) == ["a"] * 4 + ["b"] * 4
    assert all((w.samples == (1 if w.device == "a" else 2)).all() for w in windows)
    assert core.counts["duplicate"] == len(a_frames)


def test_channel_selection_and_mismatch() -> None:
    core = windower(length=4, hop=4, rate=50.0, channels=["mag_x", "acc_x"])
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
    core = windower(length=4, hop=4, rate=50.0, idle_timeout=10.0, max_devices=50)
    for i in range(50):
        core.push(Frame(f"d{i}", 0, 100.0, 50.0, np.ones((1, 9), np.float32)))
    with pytest.raises(PayloadError, match="too_many_devices"):
        core.push(Frame("one-more", 0, 100.0, 50.0, np.ones((1, 9), np.float32)))
    assert core.evict_idle(now=111.0) and core.devices == 0
    core.push(Frame("one-more", 0, 112.0, 50.0, np.ones((1, 9), np.float32)))
    assert core.devices == 1


def test_reconfigure_resets_state() -> None:
    core = windower(length=4, hop=4, rate=50.0)
    core.push(Frame("d", 0, 100.0, 50.0, np.ones((3, 9), np.float32)))
    core.reconfigure(WindowSpec(length=6, hop=2, rate=25.0), core.channels)
    assert core.devices == 0 and core.spec.length == 6


NOW = 1_800_000_000.0  # the windower's clock in these tests (Unix s)


def live_frame(seq: int, at: float, n: int = 5, device_time: float | None = None) -> Frame:
    """A frame of ``n`` 50 Hz samples received at ``at``, its samples equal to ``seq``."""
    samples = np.full((n, 9), seq, np.float32)
    return Frame("d", seq, at, 50.0, samples, device_time=device_time)


def stream(core: Windower, seqs: range, skew: float = 0.0) -> list:  # type: ignore[type-arg]
    """Push frames of 5 samples, 0.1 s apart, arriving ``skew`` s after their receive time."""
    out = []
    for seq in seqs:
        at = NOW + seq * 0.1
        out += core.push(live_frame(seq, at), now=at + skew)
    return out


def test_a_frame_from_the_future_is_refused_and_the_device_keeps_streaming() -> None:
    """Issue 12.3: one frame stamped 10^6 s ahead used to silence its device for good."""
    core = windower(length=10, hop=5, rate=50.0)
    assert stream(core, range(10))
    with pytest.raises(PayloadError, match="time_in_future"):
        core.push(live_frame(10, NOW + 1e6), now=NOW + 1.0)
    after = stream(core, range(11, 21))
    assert len(after) == 10 and all(w.end < NOW + 3 for w in after)
    assert core.counts["out_of_order"] == 0


def test_absurdly_old_frames_are_refused_and_the_skew_is_bounded_both_ways() -> None:
    core = windower(max_clock_skew=2.0, max_frame_age=3600.0)
    with pytest.raises(PayloadError, match="time_too_old"):
        core.push(live_frame(0, NOW - 3601.0), now=NOW)
    with pytest.raises(PayloadError, match="time_in_future"):
        core.push(live_frame(0, NOW + 2.5), now=NOW)
    assert core.devices == 0  # a refused frame takes no device slot
    core.push(live_frame(0, NOW + 1.5), now=NOW)  # within the skew
    core.push(live_frame(1, NOW - 3000.0), now=NOW)  # old but not absurd: out of order
    assert core.devices == 1 and core.counts["out_of_order"] == 5


def test_a_timeline_ahead_of_the_stream_restarts_after_a_stall() -> None:
    """A frame inside the skew (or a clock stepped back) puts the timeline ahead: it heals."""
    core = windower(length=10, hop=5, rate=50.0, max_clock_skew=10.0, stall_restart=2.0)
    stream(core, range(10))
    core.push(live_frame(10, NOW + 9.0), now=NOW + 1.0)  # accepted: 9 s ahead of its peers
    silenced = stream(core, range(11, 31))  # 2 s of frames behind the timeline
    resumed = stream(core, range(31, 51))
    assert not silenced and core.counts["timeline_restart"] == 1
    assert len(resumed) >= 15 and all(w.end < NOW + 6 for w in resumed)
    assert [w.seq for w in resumed] == sorted(w.seq for w in resumed)  # numbers go on


def test_a_device_reboot_is_still_followed() -> None:
    """The device clock jumps back to 0 (a reboot): re-anchored, no stall, windows go on."""
    core = windower(length=10, hop=5, rate=50.0)
    windows = []
    for seq in range(40):
        device_time = 5000.0 + seq * 0.1 if seq < 20 else (seq - 20) * 0.1
        at = NOW + seq * 0.1
        windows += core.push(live_frame(seq, at, device_time=device_time), now=at)
    assert core.counts["clock_resync"] == 1 and core.counts["timeline_restart"] == 0
    assert len(windows) >= 35


def test_a_frame_spanning_too_long_is_refused_and_windows_per_frame_are_bounded() -> None:
    """Issue 12.4: one 1 Hz frame of 1,024 samples made 2,553 windows of the 12.5 Hz model."""
    core = windower(length=25, hop=5, rate=12.5)
    attack = Frame("d", 0, NOW, 1.0, np.ones((1024, 9), np.float32))
    with pytest.raises(PayloadError, match="frame_too_long"):
        core.push(attack, now=NOW)
    settings = core.settings
    bound = (settings.max_frame_seconds + settings.max_gap) * 12.5 / 5 + 1
    longest = Frame("d", 1, NOW, 1.0, np.ones((11, 9), np.float32))  # 10 s, at the bound
    core.push(Frame("d", 0, NOW - 11.0, 1.0, np.ones((1, 9), np.float32)), now=NOW)
    assert 0 < len(core.push(longest, now=NOW)) <= bound


def test_frames_of_ever_new_rates_do_not_grow_memory() -> None:
    """Issue 12.4: each (n, rate) used to cache a step array: 10,000 rates, +81 MB."""
    core = windower()
    samples = np.ones((1024, 9), np.float32)

    def push(i: int) -> None:
        rate = 1000.0 + i * 0.01
        core.push(Frame("d", i, NOW + i, rate, samples, device_time=float(i)), now=NOW + i)

    tracemalloc.start()
    for i in range(300):  # warm up: caches and counters at their steady size
        push(i)
    before = tracemalloc.get_traced_memory()[0]
    for i in range(300, 3300):
        push(i)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 512 * 1024, f"{grown} bytes for 3,000 frames"
