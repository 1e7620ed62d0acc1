"""The recorder core without a broker: rows, manifests, dedup, recovery, limits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from imu_har.protocol.commands import StartRecording, StopRecording
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import Prediction
from imu_har.windowing.clock import DeviceClock
from services.recorder.core import CommandError, Recorder, RecorderConfig
from services.recorder.segments import WriteFn, read_segment
from tests.support.recorder import (
    FlakyDisk,
    expected_rows,
    make_frame,
    read_recordings,
    recorded_rows,
)

DEV = "imu-1"
NOW = 1_795_000_000.0


def recorder(tmp_path: Path, write: WriteFn = os.write, **kwargs: object) -> Recorder:
    """An opened core on ``tmp_path``; ``kwargs`` override settings (unvalidated: small limits)."""
    config = RecorderConfig(data_dir=tmp_path).model_copy(update=kwargs)
    core = Recorder(config, write)
    assert core.open()
    core.note_device(DEV, NOW)
    return core


def start(core: Recorder, label: str = "Squat", **kwargs: object) -> str:
    command = StartRecording(action="start", device=DEV, label=label, subject="ann", **kwargs)
    return str(core.start(command, NOW)["session"])


def stop(core: Recorder, now: float = NOW + 60) -> dict:
    return core.stop(StopRecording(action="stop", device=DEV), now)


def test_rows_schema_and_manifest(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    session = start(core, notes="first try")
    frames = [make_frame(DEV, seq)[0] for seq in range(20)]
    for seq in range(20):
        assert core.frame(DEV, make_frame(DEV, seq)[1]) == "recorded"
    assert core.commit()
    result = stop(core)
    assert result["finalized"] and result["rows"] == 100

    table = read_recordings(tmp_path)
    assert recorded_rows(table) == expected_rows(frames)
    assert set(table["session"].to_pylist()) == {session}
    assert set(table["label"].to_pylist()) == {"Squat"}
    assert set(table["subject"].to_pylist()) == {"ann"}
    assert table.schema.field("seq").type == "uint32"
    assert table.schema.field("sample").type == "int16"
    assert table.schema.field("rate").type == "float"
    assert table.schema.field("acc_x").type == "float"
    clock = DeviceClock()
    want = np.concatenate(
        [clock.sample_times(5, f.rate, f.receive_time, f.device_time) for f in frames]
    )
    np.testing.assert_array_equal(np.sort(table["time"].to_numpy()), want)
    np.testing.assert_allclose(
        np.sort(table["device_time"].to_numpy()), np.arange(100) / 50.0, rtol=0, atol=1e-9
    )
    mag = table.sort_by("time")["mag_z"].to_numpy()
    np.testing.assert_array_equal(mag, np.arange(100, dtype=np.float32) * 10 + 8)

    manifest = json.loads((tmp_path / "sessions" / f"{session}.json").read_text())
    assert manifest["rows"] == 100 and manifest["frames"] == 20
    assert manifest["label"] == "Squat" and manifest["notes"] == "first try"
    assert manifest["stop_reason"] == "command" and manifest["channels"][0] == "acc_x"
    assert manifest["units"][0] == "g" and manifest["rate"] == 50.0
    (rel,) = manifest["files"]
    assert rel.startswith("recordings/date=") and f"/device={DEV}/{session}.parquet" in rel
    frame = pd.read_parquet(tmp_path / "recordings")  # pandas, Hive partitions included
    assert len(frame) == 100 and set(frame["device"].astype(str)) == {DEV}
    assert not list((tmp_path / ".segments").glob("session-*"))


def test_no_device_time_gives_null_and_receive_timeline(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    start(core)
    core.frame(DEV, make_frame(DEV, 0, device_time=False)[1])
    core.commit()
    stop(core)
    table = read_recordings(tmp_path)
    assert table["device_time"].null_count == 5
    times = table.sort_by("time")["time"].to_numpy()
    frame = make_frame(DEV, 0)[0]
    np.testing.assert_allclose(times, frame.receive_time - np.arange(4, -1, -1) / 50.0)


def test_duplicates_and_other_devices_are_not_recorded(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    start(core)
    payload = make_frame(DEV, 3)[1]
    assert core.frame(DEV, payload) == "recorded"
    assert core.frame(DEV, payload) == "duplicate"
    assert core.frame("other", make_frame("other", 1)[1]) == "unrecorded"
    with pytest.raises(PayloadError):
        core.frame(DEV, make_frame("other", 9)[1])  # payload of another device on DEV's topic
    with pytest.raises(PayloadError):
        core.frame(DEV, payload[:-3])
    core.commit()
    assert stop(core)["rows"] == 5


def test_acks_only_after_commit_in_order(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    start(core)
    acked: list[int] = []
    for seq in range(3):
        core.frame(DEV, make_frame(DEV, seq)[1])
        core.defer_ack(lambda seq=seq: acked.append(seq))
    assert acked == []
    assert core.commit()
    assert acked == [0, 1, 2]


def test_disk_full_keeps_everything_unacked_then_resumes(tmp_path: Path) -> None:
    disk = FlakyDisk()
    core = recorder(tmp_path, write=disk, retry_seconds=0.0)
    start(core)
    acked: list[int] = []
    disk.full = True
    for seq in range(10):
        core.frame(DEV, make_frame(DEV, seq)[1])
        core.defer_ack(lambda seq=seq: acked.append(seq))
        assert not core.commit()
    assert acked == [] and "No space left" in str(core.error)
    with pytest.raises(CommandError, match="storage unavailable"):
        core.start(StartRecording(action="start", device="imu-2", label="Squat"), NOW)
    disk.full = False
    core.tick(NOW + 1)
    assert core.error is None and acked == list(range(10))
    assert stop(core)["rows"] == 50
    assert recorded_rows(read_recordings(tmp_path)) == expected_rows(
        [make_frame(DEV, s)[0] for s in range(10)]
    )


def test_crash_recovery_resumes_session_exactly_once(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    session = start(core)
    for seq in range(10):
        core.frame(DEV, make_frame(DEV, seq)[1])
    core.commit()
    for seq in range(10, 15):  # buffered, never committed: lost with the process
        core.frame(DEV, make_frame(DEV, seq)[1])
    (segment,) = (tmp_path / ".segments").glob("session-*.seg")
    with segment.open("ab") as handle:  # a torn record from the crash
        handle.write(b"F\x40\x00\x00\x00garbage")
    del core  # kill -9: no close()

    again = recorder(tmp_path)
    assert again.status(NOW)["recording"][0]["session"] == session
    assert again.status(NOW)["recording"][0]["rows"] == 50
    for seq in range(5, 20):  # the broker redelivers unacknowledged frames, some twice
        again.frame(DEV, make_frame(DEV, seq)[1])
    again.commit()
    assert stop(again)["rows"] == 100
    assert recorded_rows(read_recordings(tmp_path)) == expected_rows(
        [make_frame(DEV, s)[0] for s in range(20)]
    )


def test_stopped_but_unfinalized_session_is_finalized_on_recovery(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    session = start(core)
    core.frame(DEV, make_frame(DEV, 0)[1])
    (tmp_path / "recordings").mkdir(exist_ok=True)
    (tmp_path / "recordings").rmdir()
    (tmp_path / "recordings").write_text("not a directory")  # compaction will fail
    result = stop(core)
    assert result["finalized"] is False and "cannot finalize" in result["error"]
    assert not (tmp_path / "sessions" / f"{session}.json").exists()
    del core
    (tmp_path / "recordings").unlink()
    again = recorder(tmp_path)
    assert again.status(NOW)["recording"] == []
    manifest = json.loads((tmp_path / "sessions" / f"{session}.json").read_text())
    assert manifest["rows"] == 5 and manifest["stop_reason"] == "command"


def test_finalize_retried_on_tick_when_space_returns(tmp_path: Path) -> None:
    core = recorder(tmp_path, retry_seconds=0.0)
    session = start(core)
    core.frame(DEV, make_frame(DEV, 0)[1])
    (tmp_path / "recordings").write_text("blocked")
    assert stop(core)["finalized"] is False
    assert core.status(NOW)["finalizing"] == [session] and core.status(NOW)["error"]
    (tmp_path / "recordings").unlink()
    core.tick(NOW + 61)
    assert core.status(NOW)["finalizing"] == [] and core.error is None
    assert len(read_recordings(tmp_path)) == 5


@pytest.mark.parametrize(
    ("kwargs", "command", "message"),
    [
        ({"labels": ("Squat",)}, {"device": DEV, "label": "Lunge"}, "not one of"),
        ({"devices": ("imu-9",)}, {"device": DEV, "label": "Squat"}, "not in --devices"),
        ({}, {"device": "never-seen", "label": "Squat"}, "seen no status"),
    ],
)
def test_start_refusals_write_nothing(
    tmp_path: Path, kwargs: dict, command: dict, message: str
) -> None:
    core = recorder(tmp_path, **kwargs)
    with pytest.raises(CommandError, match=message):
        core.start(StartRecording(action="start", **command), NOW)
    assert not list((tmp_path / ".segments").iterdir())
    assert core.status(NOW)["recording"] == []


def test_double_start_and_unknown_stop(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    start(core)
    with pytest.raises(CommandError, match="already recording"):
        start(core)
    with pytest.raises(CommandError, match="no open session"):
        core.stop(StopRecording(action="stop", session="nope"), NOW)
    with pytest.raises(CommandError, match="not recording"):
        core.stop(StopRecording(action="stop", device="imu-2"), NOW)


def test_redelivered_start_after_crash_returns_its_session(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    command = StartRecording(action="start", device=DEV, label="Squat", subject="ann")
    first = core.start(command, NOW, request_id="c0ffee")
    del core  # killed before the command was acknowledged: the broker redelivers it
    again = Recorder(RecorderConfig(data_dir=tmp_path))
    assert again.open()  # no status seen yet: the resumed session makes the device known
    repeated = again.start(command, NOW + 5, request_id="c0ffee")
    assert repeated["session"] == first["session"] and repeated["repeated"]
    with pytest.raises(CommandError, match="already recording"):
        again.start(command, NOW + 5, request_id="beef")  # another request
    with pytest.raises(CommandError, match="already recording"):
        again.start(command, NOW + 5)  # no correlation data: a repeat cannot be told apart
    assert [s["session"] for s in again.status(NOW)["recording"]] == [first["session"]]


def test_discarded_session_leaves_nothing(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    session = start(core)
    core.frame(DEV, make_frame(DEV, 0)[1])
    core.discard(session)
    assert core.status(NOW)["recording"] == [] and core.counts["sessions_discarded"] == 1
    assert not list((tmp_path / ".segments").iterdir())
    assert core.commit()
    assert start(core) != session


def test_time_limit_closes_session(tmp_path: Path) -> None:
    core = recorder(tmp_path, max_session_seconds=100.0)
    session = start(core, max_seconds=30.0)
    core.frame(DEV, make_frame(DEV, 0)[1])
    core.commit()
    core.tick(NOW + 29)
    assert core.status(NOW)["recording"]
    core.tick(NOW + 31)
    assert core.status(NOW)["recording"] == []
    manifest = json.loads((tmp_path / "sessions" / f"{session}.json").read_text())
    assert manifest["stop_reason"] == "time_limit" and manifest["max_seconds"] == 30.0
    listed = core.list_sessions()["sessions"]
    assert [s["session"] for s in listed] == [session]


def test_rotation_splits_parts_and_survives_recovery(tmp_path: Path) -> None:
    core = recorder(tmp_path, rotate_rows=20)
    session = start(core)
    for seq in range(10):
        core.frame(DEV, make_frame(DEV, seq)[1])
        core.commit()
        core.tick(NOW)
    del core
    again = recorder(tmp_path, rotate_rows=20)
    for seq in range(8, 13):  # redelivery across a rotation boundary
        again.frame(DEV, make_frame(DEV, seq)[1])
    again.commit()
    result = stop(again)
    assert result["rows"] == 65
    assert len(result["files"]) >= 3 and result["files"][1].endswith(f"{session}-0001.parquet")
    assert recorded_rows(read_recordings(tmp_path)) == expected_rows(
        [make_frame(DEV, s)[0] for s in range(13)]
    )
    times = read_recordings(tmp_path).sort_by("time")["time"].to_numpy()
    assert np.all(np.diff(times) > 0)  # one continuous timeline across parts


def prediction(seq: int, end: float = NOW) -> bytes:
    return Prediction(
        device=DEV,
        window_seq=seq,
        window_start=end - 0.4,
        window_end=end,
        label="Squat",
        confidence=0.9,
        probabilities={"Squat": 0.9, "Lunge": 0.1},
        smoothed_label="Squat",
        model="m",
        model_version="abc",
        latency_ms=1.5,
    ).to_payload()


def test_predictions_logged_deduplicated_and_rotated(tmp_path: Path) -> None:
    core = recorder(tmp_path, predictions_rotate_rows=4)
    for seq in range(6):
        assert core.prediction(prediction(seq), NOW + seq) == "recorded"
    assert core.prediction(prediction(5), NOW) == "duplicate"
    with pytest.raises(PayloadError):
        core.prediction(b'{"device": "x"}', NOW)
    with pytest.raises(PayloadError):
        core.prediction(prediction(7, end=1e300), NOW)
    core.commit()
    core.tick(NOW)  # 6 >= 4: rotated into a part
    core.prediction(prediction(6, end=NOW + 86_400), NOW)  # next day: its own partition
    core.close()
    table = pd.read_parquet(tmp_path / "predictions")
    assert sorted(table["window_seq"]) == list(range(7))
    assert set(table["date"].astype(str)) == {"2026-11-18", "2026-11-19"}
    assert json.loads(table["probabilities"].iloc[0]) == {"Lunge": 0.1, "Squat": 0.9}
    assert not list((tmp_path / ".segments").glob("predictions-*"))


def test_compacted_predictions_hold_every_field_even_ones_left_to_defaults(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    full = Prediction.from_payload(prediction(1))
    short = json.loads(prediction(2))
    del short["source_time"], short["classified_at"]  # a client relying on the defaults
    core.prediction(full.to_payload(), NOW + 1)
    core.prediction(json.dumps(short).encode(), NOW + 2)
    core.close()
    rows = pq.read_table(tmp_path / "predictions").sort_by("window_seq").to_pylist()
    got, want = rows[0], full.model_dump()
    assert json.loads(got["probabilities"]) == want.pop("probabilities")
    assert {k: got[k] for k in want} == want
    assert rows[0]["received_at"] == NOW + 1 and rows[1]["received_at"] == NOW + 2
    assert rows[1]["source_time"] == 0.0 and rows[1]["classified_at"] > 0
    assert rows[1]["window_seq"] == 2 and rows[1]["label"] == "Squat"


def test_prediction_segment_reopened_after_crash(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    core.prediction(prediction(1), NOW)
    core.commit()
    del core
    again = recorder(tmp_path)
    assert again.prediction(prediction(1), NOW) == "duplicate"
    again.prediction(prediction(2), NOW)
    again.close()
    assert sorted(pq.read_table(tmp_path / "predictions")["window_seq"].to_pylist()) == [1, 2]


def test_torn_segment_tail_is_cut(tmp_path: Path) -> None:
    from services.recorder.segments import SegmentWriter

    path = tmp_path / "x.seg"
    writer = SegmentWriter(path)
    writer.append(b"F", b"one")
    writer.append(b"F", b"two")
    writer.commit()
    writer.close()
    with path.open("ab") as handle:
        handle.write(b"F\x03\x00\x00\x00\x00\x00\x00\x00tw")
    assert read_segment(path) == [(b"F", b"one"), (b"F", b"two")]
    assert read_segment(path, repair=False) == [(b"F", b"one"), (b"F", b"two")]
