"""Bad input: one clear DataError naming the problem; the CLI prints it and exits 2 (no TF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imu_har.sim.simulation import synthetic_recordings
from training.api import check_trainable, load_windows
from training.cli import evaluate_main, train_main, tune_main
from training.errors import DataError
from training.evaluation import check_splittable
from training.params import TrainParams, load_params

PARAMS = TrainParams(window=20, hop=10, rate=25.0)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    labels = ("Squat", "Jumping")
    return synthetic_recordings(2, 2.0, rate=25.0, seed=4, labels=labels).to_pandas()


def _error(data, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError) as info:
        load_windows(data, kw.pop("params", PARAMS), **kw)
    return str(info.value)


def test_missing_or_misnamed_columns(table: pd.DataFrame) -> None:
    assert "label column 'activty' not found" in _error(table, label_col="activty")
    assert "group column 'subject' not found" in _error(table, group_col="subject")
    assert "order column 'idx' not found" in _error(table.drop(columns="time"), order_col="idx")


def test_unknown_and_non_numeric_channels(table: pd.DataFrame) -> None:
    assert "unknown channels ['acc_w']" in _error(table, channels=("acc_x", "acc_w"))
    assert "channel 'activity' is not numeric" in _error(table, channels=("acc_x", "activity"))


def test_nan_rows_are_named(table: pd.DataFrame) -> None:
    bad = table.copy()
    bad.loc[7, "gyro_y"] = np.nan
    bad.loc[9, "activity"] = None
    message = _error(bad)
    assert "2 rows have missing" in message and "gyro_y" in message and "row 7" in message


def test_recording_shorter_than_one_window(table: pd.DataFrame) -> None:
    message = _error(table, params=PARAMS.with_overrides(window=60))
    assert "too short for one window of 60 samples" in message and "session=0" in message


def test_empty_and_unreadable_files(tmp_path: Path, table: pd.DataFrame) -> None:
    empty = tmp_path / "empty.parquet"
    table.iloc[:0].to_parquet(empty)
    assert "holds no rows" in _error(empty)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    assert "cannot read" in _error(junk)
    assert "does not exist" in _error(tmp_path / "nope.csv")
    (tmp_path / "dir").mkdir()
    assert "holds no .parquet files" in _error(tmp_path / "dir")


def test_rate_is_required_without_a_rate_column(table: pd.DataFrame) -> None:
    assert "--rate" in _error(table, params=TrainParams())


def test_ambiguous_order(table: pd.DataFrame) -> None:
    bad = table.drop(columns="time")
    bad.loc[bad.index[:3], "index"] = 0
    assert "repeats values" in _error(bad, order_col="index")


def test_label_with_too_few_windows_or_groups(table: pd.DataFrame) -> None:
    ws, _, _ = load_windows(table, PARAMS)
    one_group = ws.subset(np.flatnonzero(~((ws.labels == "Jumping") & (ws.groups == "1"))))
    with pytest.raises(DataError, match="'Jumping' has windows in only 1 group"):
        check_splittable(one_group)
    one_window = ws.subset(np.concatenate([np.flatnonzero(ws.labels == "Squat"), [0]]))
    one_window.labels[-1] = "Lunge"
    with pytest.raises(DataError, match=r"too few windows to train.*Lunge"):
        check_trainable(one_window)


def test_bad_params_file(tmp_path: Path) -> None:
    path = tmp_path / "best.json"
    path.write_text('{"params": {"units": 8, "colour": 1}}')
    with pytest.raises(DataError, match="unknown parameters \\['colour'\\]"):
        load_params(path)
    path.write_text('{"arch": "transformer"}')
    with pytest.raises(DataError, match="unknown architecture"):
        load_params(path)


def test_cli_prints_the_error_and_exits_2(
    tmp_path: Path, table: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "t.csv"
    table.to_csv(data, index=False)
    out = tmp_path / "model"
    assert train_main(["--data", str(data), "--out", str(out), "--label-col", "lbl"]) == 2
    assert "har train: error: label column 'lbl' not found" in capsys.readouterr().err
    assert not out.exists()
    argv = ["--data", str(data), "--out", str(out), "--rate", "25", "--channel-units", "g,g"]
    assert train_main(argv) == 2
    assert "2 channel units given for 9 channels" in capsys.readouterr().err
    assert evaluate_main(["--model", str(tmp_path / "none"), "--data", str(data)]) == 2
    assert "har evaluate: error:" in capsys.readouterr().err
    argv = ["--data", str(data), "--out", str(tmp_path / "s"), "--trials", "1"]
    assert tune_main([*argv, "--rate", "25", "--channels", "acc_x,acc_q"]) == 2
    assert "unknown channels ['acc_q']" in capsys.readouterr().err
