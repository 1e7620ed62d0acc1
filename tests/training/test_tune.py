"""har tune: two trials, stop, resume to three; best.json feeds har train --params (TF)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imu_har.sim.simulation import synthetic_recordings
from training.params import TrainParams, load_params
from training.tune import BEST_FILE, LOG_FILE, TRIALS_FILE, tune

pytestmark = [pytest.mark.tf, pytest.mark.slow]
SMALL = {"window": [20, 25], "hop": [12], "units": [4, 8], "layers": [1], "batch_size": [32]}


def test_search_persists_stops_and_resumes(tmp_path: Path) -> None:
    data_path = tmp_path / "sim.parquet"
    labels = ("Squat", "Jumping", "Situp")
    synthetic_recordings(2, 4.0, rate=25.0, seed=8, labels=labels).to_pandas().to_parquet(data_path)
    data = {"path": str(data_path), "layout": {}, "cv": 2}
    base = TrainParams(arch="cnn", window=20, hop=12, rate=25.0)
    lines: list[str] = []
    out = tmp_path / "search"
    first = tune(data, out, 2, base, max_epochs=2, progress=lines.append, choices=SMALL)
    assert first["trials"] == 2 and (out / TRIALS_FILE).is_file()
    log_before = json.loads((out / LOG_FILE).read_text())
    assert [line.split(":")[0] for line in lines if line.startswith("trial")] == [
        "trial 1/2",
        "trial 2/2",
    ]

    lines.clear()
    second = tune(data, out, 3, base, max_epochs=2, progress=lines.append, choices=SMALL)
    log_after = json.loads((out / LOG_FILE).read_text())
    assert second["trials"] == 3 and len(log_after) == 3
    assert log_after[:2] == log_before  # the first two trials were kept, not rerun
    assert "2 trial(s) done, 1 to run" in lines[0]
    assert [line.split(":")[0] for line in lines if line.startswith("trial")] == ["trial 3/3"]

    best = load_params(out / BEST_FILE)
    assert best.arch == "cnn" and best.window in SMALL["window"] and best.units in SMALL["units"]
    assert best.epochs in (1, 2) and 0 <= second["mean_accuracy"] <= 1
