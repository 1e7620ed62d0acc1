"""Edits of finished sessions in the recorder core: relabel, exclude, delete, reps (no broker)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from imu_har.protocol.commands import (
    DeleteSession,
    ExcludeSession,
    RelabelSession,
    SetReps,
    StartRecording,
    StopRecording,
)
from services.recorder.core import CommandError, Recorder, RecorderConfig
from services.recorder.segments import WriteFn
from tests.support.recorder import FlakyDisk, make_frame, read_recordings

DEV = "imu-1"
NOW = 1_795_000_000.0


def recorder(tmp_path: Path, write: WriteFn = os.write, **kwargs: object) -> Recorder:
    config = RecorderConfig(data_dir=tmp_path, fsync=False).model_copy(update=kwargs)
    core = Recorder(config, write)
    assert core.open()
    core.note_device(DEV, NOW)
    return core


def record(core: Recorder, label: str = "Squat", frames: int = 10, **kwargs: object) -> str:
    """A finished session of ``frames`` frames (5 rows each); rotates every commit if asked."""
    command = StartRecording(action="start", device=DEV, label=label, subject="ann", **kwargs)
    session = str(core.start(command, NOW)["session"])
    for seq in range(frames):
        assert core.frame(DEV, make_frame(DEV, seq)[1]) == "recorded"
        assert core.commit()
        core.tick(NOW)
    assert core.stop(StopRecording(action="stop", device=DEV), NOW + 60)["finalized"]
    return session


def manifest(tmp_path: Path, session: str) -> dict:
    return json.loads((tmp_path / "sessions" / f"{session}.json").read_text())


def labels_on_disk(tmp_path: Path) -> dict[str, set[str]]:
    table = read_recordings(tmp_path)
    frame = table.select(["session", "label"]).to_pandas()
    return {s: set(g["label"]) for s, g in frame.groupby("session")}


def test_start_reps_are_kept_in_the_manifest_and_set_reps_changes_them(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    session = record(core, reps=12)
    assert manifest(tmp_path, session)["reps"] == 12
    assert manifest(tmp_path, session)["excluded"] is False
    reply = core.edit(SetReps(action="set_reps", session=session, reps=15))
    assert reply["reps"] == 15 and manifest(tmp_path, session)["reps"] == 15
    core.edit(SetReps(action="set_reps", session=session, reps=None))
    assert manifest(tmp_path, session)["reps"] is None
    listed = core.list_sessions()["sessions"][0]
    assert listed["session"] == session and listed["reps"] is None and listed["excluded"] is False


def test_exclude_and_include_again(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    session = record(core)
    core.edit(ExcludeSession(action="exclude", session=session, excluded=True))
    assert manifest(tmp_path, session)["excluded"] is True
    assert core.list_sessions()["sessions"][0]["excluded"] is True
    core.edit(ExcludeSession(action="exclude", session=session, excluded=False))
    assert manifest(tmp_path, session)["excluded"] is False
    assert core.counts["sessions_exclude"] == 2
    assert not list((tmp_path / ".segments").glob("edit-*"))


def test_relabel_rewrites_every_part_and_the_manifest(tmp_path: Path) -> None:
    core = recorder(tmp_path, rotate_rows=10)
    session = record(core, frames=9)  # 45 rows in parts of 10+ rows
    other = record(core, label="Lunge", frames=3)
    files = manifest(tmp_path, session)["files"]
    assert len(files) >= 3
    before = read_recordings(tmp_path).sort_by([("session", "ascending"), ("time", "ascending")])
    reply = core.edit(RelabelSession(action="relabel", session=session, label="Pushup"))
    assert reply["label"] == "Pushup" and reply["previous_label"] == "Squat"
    assert reply["rows_rewritten"] == 45
    assert manifest(tmp_path, session)["label"] == "Pushup"
    assert labels_on_disk(tmp_path) == {session: {"Pushup"}, other: {"Lunge"}}
    after = read_recordings(tmp_path).sort_by([("session", "ascending"), ("time", "ascending")])
    assert after.drop(["label"]).equals(before.drop(["label"]))  # nothing else changed
    first = tmp_path / files[0]
    assert pq.read_schema(first).field("label").type == "string"
    assert pq.read_metadata(first).row_group(0).column(0).compression == "ZSTD"
    # What training reads (the recorder's directory, pandas) has the new label.
    rows = pd.read_parquet(tmp_path / "recordings")
    assert set(rows.loc[rows["session"] == session, "label"]) == {"Pushup"}
    assert not list(tmp_path.rglob(".*.tmp"))


def test_delete_removes_parts_and_manifest_only_of_that_session(tmp_path: Path) -> None:
    core = recorder(tmp_path, rotate_rows=10)
    session = record(core, frames=6)
    keep = record(core, label="Lunge", frames=2)
    reply = core.edit(DeleteSession(action="delete", session=session))
    assert reply["session"] == session and reply["deleted"] is True and reply["parts"] >= 2
    assert not (tmp_path / "sessions" / f"{session}.json").exists()
    assert set(read_recordings(tmp_path)["session"].to_pylist()) == {keep}
    assert core.list_sessions()["total"] == 1
    with pytest.raises(CommandError, match="no finished session"):
        core.edit(DeleteSession(action="delete", session=session))


def test_open_and_finalizing_sessions_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    core = recorder(tmp_path, labels=("Squat", "Lunge"))
    done = record(core)
    command = StartRecording(action="start", device=DEV, label="Squat")
    open_id = str(core.start(command, NOW)["session"])
    for edit in (
        RelabelSession(action="relabel", session=open_id, label="Lunge"),
        ExcludeSession(action="exclude", session=open_id),
        DeleteSession(action="delete", session=open_id),
        SetReps(action="set_reps", session=open_id, reps=3),
    ):
        with pytest.raises(CommandError, match="still recording"):
            core.edit(edit)
    with pytest.raises(CommandError, match="no finished session"):
        core.edit(SetReps(action="set_reps", session="20261204T000000Z-nope-000000", reps=1))
    with pytest.raises(CommandError, match="not one of"):
        core.edit(RelabelSession(action="relabel", session=done, label="Dancing"))
    assert manifest(tmp_path, done)["label"] == "Squat"


def test_a_manifest_listing_files_elsewhere_deletes_nothing_there(tmp_path: Path) -> None:
    data = tmp_path / "data"
    outside = tmp_path / "precious.parquet"
    outside.write_bytes(b"keep me")
    core = recorder(data)
    session = record(core)
    path = data / "sessions" / f"{session}.json"
    tampered = json.loads(path.read_text()) | {"files": ["../precious.parquet", "/etc/passwd"]}
    path.write_text(json.dumps(tampered))
    # A link named like a part of the session, pointing out of the data directory.
    folder = next((data / "recordings").glob("date=*/device=*"))
    link = folder / f"{session}-0007.parquet"
    link.symlink_to(outside)
    reply = core.edit(RelabelSession(action="relabel", session=session, label="Lunge"))
    assert reply["rows_rewritten"] == 50 and link.is_symlink()
    reply = core.edit(DeleteSession(action="delete", session=session))
    assert reply["parts"] == 1
    assert outside.read_bytes() == b"keep me"
    assert not (folder / f"{session}.parquet").exists()


def test_a_damaged_part_refuses_the_relabel_before_changing_anything(tmp_path: Path) -> None:
    core = recorder(tmp_path, rotate_rows=10)
    session = record(core, frames=6)
    files = manifest(tmp_path, session)["files"]
    (tmp_path / files[-1]).write_bytes(b"PAR1 not really")
    with pytest.raises(CommandError, match="unreadable"):
        core.edit(RelabelSession(action="relabel", session=session, label="Lunge"))
    assert manifest(tmp_path, session)["label"] == "Squat"
    assert not list((tmp_path / ".segments").glob("edit-*.json"))


def test_an_oversized_or_foreign_manifest_is_refused(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    session = record(core)
    path = tmp_path / "sessions" / f"{session}.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"session": "someone-else"}))
    with pytest.raises(CommandError, match="another session"):
        core.edit(ExcludeSession(action="exclude", session=session))
    path.write_text(" " * (2 << 20))
    with pytest.raises(CommandError, match="over"):
        core.edit(ExcludeSession(action="exclude", session=session))


def test_a_relabel_cut_short_by_a_full_disk_is_finished_later(tmp_path: Path) -> None:
    disk = FlakyDisk()
    core = recorder(tmp_path, disk, rotate_rows=10, retry_seconds=0.0)
    session = record(core, frames=9)
    disk.room = 3000  # the intent and the manifest fit; a rewritten part does not
    with pytest.raises(CommandError, match="cannot relabel"):
        core.edit(RelabelSession(action="relabel", session=session, label="Lunge"))
    assert manifest(tmp_path, session)["label"] == "Lunge"
    assert labels_on_disk(tmp_path)[session] == {"Squat"}  # the parts are not rewritten yet
    assert list((tmp_path / ".segments").glob("edit-*.json"))
    disk.room = None
    core.tick(NOW + 100)  # the disk works again: the edit is finished
    assert labels_on_disk(tmp_path)[session] == {"Lunge"}
    assert not list((tmp_path / ".segments").glob("edit-*.json"))


def test_edits_a_crash_interrupted_are_finished_at_start(tmp_path: Path) -> None:
    disk = FlakyDisk()
    core = recorder(tmp_path, disk, rotate_rows=10)
    relabelled = record(core, frames=9)
    deleted = record(core, label="Lunge", frames=4)
    disk.full = True
    for edit in (
        RelabelSession(action="relabel", session=relabelled, label="Pushup"),
        DeleteSession(action="delete", session=deleted),
    ):
        with pytest.raises(CommandError):
            core.edit(edit)
    assert not list((tmp_path / ".segments").glob("edit-*.json"))  # not even the intent
    # Now the crash comes after the intent: written by hand as the edit writes it.
    for session, intent in (
        (relabelled, {"action": "relabel", "label": "Pushup", "from": "Squat"}),
        (deleted, {"action": "delete"}),
    ):
        path = tmp_path / ".segments" / f"edit-{session}.json"
        path.write_text(json.dumps(intent | {"session": session}))
    del core  # kill -9
    again = recorder(tmp_path)
    assert again.counts["edits_resumed"] == 2
    assert labels_on_disk(tmp_path) == {relabelled: {"Pushup"}}
    assert manifest(tmp_path, relabelled)["label"] == "Pushup"
    assert not (tmp_path / "sessions" / f"{deleted}.json").exists()
    assert not list((tmp_path / ".segments").glob("edit-*.json"))
