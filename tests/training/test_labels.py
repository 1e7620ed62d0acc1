"""Training refuses labels that are not names, and ``--data DIR`` honours the manifests (no TF).

Issue 12: a Parquet file with label ``"Squat\\n"`` trained a model whose spec
then failed validation at export, after the whole fit; it is now refused while
the data is read, naming the label. A recorder data directory given to
``har train --data`` left excluded (and half-deleted) sessions in, unlike the
trainer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from imu_har.protocol.messages import MAX_LABELS
from imu_har.sim.simulation import synthetic_recordings
from tests.support.trainer import edit_manifest, record_sessions
from training.api import load_windows
from training.cli import train_main
from training.data import check_labels, read_table
from training.errors import DataError
from training.manifests import training_manifests
from training.params import TrainParams
from training.recorded import load_sessions

PARAMS = TrainParams(window=20, hop=10, rate=25.0)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    labels = ("Squat", "Jumping")
    return synthetic_recordings(2, 2.0, rate=25.0, seed=4, labels=labels).to_pandas()


def with_label(table: pd.DataFrame, old: str, new: str) -> pd.DataFrame:
    out = table.copy()
    out["activity"] = out["activity"].astype(str).replace(old, new)
    return out


@pytest.mark.parametrize("bad", ["Squat\n", "a/b", "+", "#", "Sq\x00uat", " Squat", "x" * 65])
def test_a_label_that_is_not_a_name_is_refused_before_windowing(
    table: pd.DataFrame, bad: str
) -> None:
    with pytest.raises(DataError) as err:
        load_windows(with_label(table, "Jumping", bad), PARAMS)
    assert repr(bad[:80]) in str(err.value) and "'Squat'" not in str(err.value)


def test_every_bad_label_is_named_once(table: pd.DataFrame) -> None:
    bad = with_label(with_label(table, "Jumping", "Jump\n"), "Squat", "a/b")
    with pytest.raises(DataError, match=re.escape("2 labels are not names: 'Jump\\n', 'a/b'")):
        load_windows(bad, PARAMS)


def test_too_many_labels_are_refused() -> None:
    check_labels([f"c{i}" for i in range(MAX_LABELS)] * 2)
    with pytest.raises(DataError, match=f"at most {MAX_LABELS}"):
        check_labels([f"c{i}" for i in range(MAX_LABELS + 1)])


def test_har_train_prints_the_bad_label_and_exits_2(
    tmp_path: Path, table: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "t.parquet"
    with_label(table, "Jumping", "Squat\n").to_parquet(data)
    out = tmp_path / "model"
    assert train_main(["--data", str(data), "--out", str(out), "--rate", "25", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "har train: error:" in err and "'Squat\\n'" in err
    assert not out.exists()


def test_a_recorded_session_with_a_bad_manifest_label_is_refused(tmp_path: Path) -> None:
    ids = record_sessions(tmp_path, [("w1", "Squat", None), ("w2", "Lunge", None)], seconds=1.0)
    edit_manifest(tmp_path, ids[1], label="Lunge\n")  # edited by hand, or an older recorder
    manifests = training_manifests(tmp_path)
    with pytest.raises(DataError, match=re.escape(f"session {ids[1]!r}: label 'Lunge\\n'")):
        load_sessions(tmp_path, manifests)
    assert set(load_sessions(tmp_path, manifests[:1])["label"]) == {"Squat"}


def test_har_train_data_dir_leaves_out_excluded_and_deleting_sessions(tmp_path: Path) -> None:
    plan = [("w1", "Squat", None), ("w2", "Squat", None), ("w1", "Lunge", None)]
    ids = record_sessions(tmp_path, [*plan, ("w2", "Lunge", None)], seconds=1.0)
    edit_manifest(tmp_path, ids[1], excluded=True)
    edit_manifest(tmp_path, ids[2], excluded=True, deleting=True)
    kept = {ids[0], ids[3]}
    assert set(read_table(tmp_path)["session"]) == kept
    assert set(read_table(tmp_path / "recordings")["session"]) == kept
    assert [m["session"] for m in training_manifests(tmp_path)] == sorted(kept)
    edit_manifest(tmp_path, ids[1], excluded=False)  # back in
    assert set(read_table(tmp_path)["session"]) == kept | {ids[1]}


def test_a_data_dir_whose_sessions_are_all_left_out_says_so(tmp_path: Path) -> None:
    ids = record_sessions(tmp_path, [("w1", "Squat", None)], seconds=1.0)
    edit_manifest(tmp_path, ids[0], excluded=True)
    with pytest.raises(DataError, match="excluded"):
        read_table(tmp_path)
