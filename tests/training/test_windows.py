"""Training's windowing is the live windower's: same windows, recordings kept apart (no TF)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imu_har.protocol.codec import DEFAULT_CHANNELS, Frame
from imu_har.sim.simulation import WearableSimulator, synthetic_recordings
from imu_har.windowing.clock import DeviceClock
from imu_har.windowing.windows import WindowSpec
from services.windower.core import Windower
from services.windower.settings import WindowerSettings
from training.data import read_table, resolve_layout
from training.evaluation import grouped_folds, metrics
from training.windows import make_windows, recordings

RATE = 50.0


def _frames(device: str, seed: int) -> list[tuple[Frame, str]]:
    """A simulated stream: frames of 5 samples, jittered arrival, a label change and a gap."""
    sim = WearableSimulator(rate=RATE, seed=seed)
    rng = np.random.default_rng(seed)
    out, t_dev, seq = [], 100.0, 0
    for label, n_frames in (("Squat", 40), ("Pushup", 30), ("Squat", 20)):
        for _ in range(n_frames):
            samples, _ = sim.next_samples(label, 5)
            receive = 1_700_000_000.0 + t_dev + 0.1 + rng.uniform(0, 0.02)
            out.append((Frame(device, seq, receive, RATE, samples, device_time=t_dev), label))
            t_dev += 5 / RATE
            seq += 1
        t_dev += 3.0  # a pause longer than max_gap between bouts restarts the grid
    return out


def _recorder_rows(session: str, frames: list[tuple[Frame, str]]) -> pd.DataFrame:
    """The rows the recorder writes for these frames (time from its own DeviceClock)."""
    clock, parts = DeviceClock(), []
    for frame, label in frames:
        n = len(frame.samples)
        times = clock.sample_times(n, frame.rate, frame.receive_time, frame.device_time)
        part = pd.DataFrame(frame.samples, columns=list(DEFAULT_CHANNELS))
        part.insert(0, "time", times)
        part.insert(0, "receive_time", frame.receive_time)
        part.insert(0, "seq", np.uint32(frame.seq))
        part.insert(0, "label", label)
        part.insert(0, "device", frame.device)
        part.insert(0, "session", session)
        part["rate"] = frame.rate
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_training_cuts_exactly_the_live_windows() -> None:
    settings = WindowerSettings(length=20, hop=5, rate=25.0)
    spec = settings.window_spec()
    streams = {"dev-a": _frames("dev-a", 1), "dev-b": _frames("dev-b", 2)}
    live = Windower(settings)
    live_windows: dict[str, list[np.ndarray]] = {d: [] for d in streams}
    for pair in zip(*streams.values(), strict=True):  # interleave the devices, frame by frame
        for frame, _ in pair:
            live_windows[frame.device] += [w.samples for w in live.push(frame)]
    table = pd.concat([_recorder_rows("s1", f) for f in streams.values()], ignore_index=True)
    layout = resolve_layout(table)
    assert (layout.group_col, layout.label_col, layout.time_col) == ("session", "label", "time")
    ws = make_windows(table, layout, spec)
    for device, expected in live_windows.items():
        got = ws.x[ws.recordings == f"session=s1/device={device}"]
        assert len(expected) > 20 and len(got) == len(expected)
        np.testing.assert_array_equal(got, np.stack(expected))  # bit for bit
    # windows spanning the Squat -> Pushup change take the majority label
    assert set(ws.labels) == {"Squat", "Pushup"}


def test_order_column_restarting_per_label_makes_one_recording_per_label() -> None:
    table = synthetic_recordings(2, 4.0, rate=RATE, seed=5, labels=("Squat", "Lunge")).to_pandas()
    table = table.drop(columns=["time"]).sample(frac=1.0, random_state=0)  # shuffled rows
    layout = resolve_layout(table, label_col="activity", order_col="index")
    recs = recordings(table, layout)
    assert len(recs) == 4
    for _, part in recs:
        assert part["activity"].nunique() == 1 and part["index"].is_monotonic_increasing
    spec = WindowSpec(length=25, hop=25, rate=RATE)
    ws = make_windows(table, layout, spec)
    assert len(ws) == 4 * (200 // 25)  # rank / rate times: resampling is the identity
    first = next(p for n, p in recs if n == "session=0/label=Lunge")
    expected = first[list(DEFAULT_CHANNELS)].to_numpy(np.float32)[:25]
    np.testing.assert_array_equal(ws.x[ws.recordings == "session=0/label=Lunge"][0], expected)


def test_reads_hive_partitioned_recorder_dataset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    frames = _frames("dev-a", 3)[:30]
    rows = _recorder_rows("s9", frames)
    rows["subject"] = None
    rows["device_time"] = np.nan
    rows["device"] = rows["device"].astype("category")  # the recorder dictionary-encodes it
    target = tmp_path / "recordings" / "date=2026-11-24" / "device=dev-a"
    target.mkdir(parents=True)
    rows.to_parquet(target / "s9.parquet")
    rows.iloc[:5].to_parquet(target / ".s9.parquet.tmp.parquet")  # a writer's temporary
    log = tmp_path / "predictions" / "date=2026-11-24"
    log.mkdir(parents=True)
    pd.DataFrame({"window_seq": [1], "label": ["Squat"]}).to_parquet(log / "p.parquet")
    table = read_table(tmp_path)  # the recorder's data dir: recordings/ only
    assert len(table) == len(rows)
    layout = resolve_layout(table)
    assert layout.device_col == "device" and layout.channels == DEFAULT_CHANNELS
    ws = make_windows(table, layout, WindowSpec(20, 5, 25.0))
    assert len(ws) > 0 and set(ws.groups) == {"s9"}


@pytest.mark.parametrize("k", [2, 3, "logo", 0])
def test_grouped_folds_never_share_a_group(k: int | str) -> None:
    groups = np.repeat(np.array(["a", "b", "c", "d", "e"], dtype=object), [3, 5, 2, 4, 6])
    seen = []
    for train, test in grouped_folds(groups, k):
        assert not set(groups[train]) & set(groups[test])
        assert len(train) + len(test) == len(groups)
        seen += groups[test].tolist()
    assert sorted(seen) == sorted(groups.tolist())  # every window tested exactly once


def test_metrics_on_a_hand_example() -> None:
    m = metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_rows_with_repeated_times_are_dropped_by_the_windower_itself() -> None:
    """Training no longer re-derives which rows the windower keeps: sources index the rows."""
    n, rng = 200, np.random.default_rng(4)
    table = pd.DataFrame(rng.normal(size=(n, 9)), columns=list(DEFAULT_CHANNELS))
    table.insert(0, "time", np.arange(n) / RATE)
    table.insert(0, "label", "Squat")
    table.insert(0, "session", "s1")
    repeats = table.iloc[[3, 40, 41, 97, 98, 99, 150, 199]]
    repeats = repeats.assign(**dict.fromkeys(DEFAULT_CHANNELS, 99.0))  # dropped: never seen
    table = pd.concat([table, repeats], ignore_index=True)  # same times, after the originals
    ws = make_windows(table, resolve_layout(table), WindowSpec(length=10, hop=10, rate=RATE))
    assert len(ws) == n // 10 and set(ws.labels) == {"Squat"}
    originals = table.iloc[:n][list(DEFAULT_CHANNELS)].to_numpy(np.float32)
    np.testing.assert_array_equal(ws.x.reshape(-1, 9), originals)
