"""Reading chosen sessions (training.recorded) and choosing them (services.trainer.catalog)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imu_har.protocol.trainer import TrainCommand
from services.trainer.catalog import RefusedError, plan_job, read_manifest
from services.trainer.settings import TrainerConfig
from tests.support.trainer import TINY, edit_manifest, record_sessions
from training.errors import DataError
from training.recorded import load_sessions

SESSIONS = [("w1", "Squat", "ann"), ("w2", "Squat", "bob"), ("w1", "Jumping", "ann")]


def test_the_manifest_label_wins_and_excluded_sessions_stay_out(tmp_path: Path) -> None:
    ids = record_sessions(tmp_path, [*SESSIONS, ("w2", "Jumping", "bob")], seconds=2.0)
    edit_manifest(tmp_path, ids[0], label="Lunge")  # a relabel whose rows were not rewritten
    table = load_sessions(tmp_path, [read_manifest(tmp_path, s) for s in ids[:2]])
    assert set(table.groupby("session")["label"].unique().map(tuple)) == {("Lunge",), ("Squat",)}

    edit_manifest(tmp_path, ids[1], excluded=True)
    config = TrainerConfig(data_dir=tmp_path, min_windows_per_label=2)
    command = TrainCommand(action="train", name="m", params=TINY)
    with pytest.raises(RefusedError, match="Lunge"):  # Lunge in ann only, Squat gone (excluded)
        plan_job(command, config)
    edit_manifest(tmp_path, ids[0], label="Squat")
    edit_manifest(tmp_path, ids[1], excluded=False)
    plan = plan_job(command, config)
    assert plan.grouping == "subject" and plan.groups[ids[0]] == "ann" and plan.cv == "logo"


def test_sessions_without_subjects_are_grouped_by_session(tmp_path: Path) -> None:
    ids = record_sessions(tmp_path, [(d, lab, None) for d, lab, _ in SESSIONS * 2], seconds=2.0)
    config = TrainerConfig(data_dir=tmp_path, min_windows_per_label=2, max_folds=4)
    plan = plan_job(TrainCommand(action="train", name="m", params=TINY), config)
    assert plan.grouping == "session" and plan.groups == {s: s for s in ids}
    assert (plan.cv, plan.folds) == (4, 4)  # 6 sessions: grouped 4-fold, not 6 folds
    with pytest.raises(RefusedError, match="name none"):
        plan_job(TrainCommand(action="train", name="m", params=TINY, cv="subject"), config)


def test_a_file_outside_the_data_directory_is_refused(tmp_path: Path) -> None:
    ids = record_sessions(tmp_path / "data", SESSIONS[:1], seconds=2.0)
    manifest = read_manifest(tmp_path / "data", ids[0])
    assert manifest is not None
    for trick in ["../outside.parquet", "/etc/passwd", "sessions/x.json"]:
        with pytest.raises(DataError, match="refused"):
            load_sessions(tmp_path / "data", [manifest | {"files": [trick]}])
