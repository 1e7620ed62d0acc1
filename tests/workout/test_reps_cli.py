"""``har reps``: the live core over recorded sessions, with a model or logged predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from imu_har.protocol.codec import DEFAULT_CHANNELS
from imu_har.sim.realism import Realism
from tests.support.workout import T0, oracle, session
from training.reps import main

MODEL = Path(__file__).resolve().parents[2] / "models" / "default"
SHORT = Realism(reps=(7, 7), pause_chance=0.0, long_pause_chance=0.0, partial_chance=0.0)


def record(tmp_path: Path, predictions: bool) -> tuple[Path, int]:
    """A recorder data dir with one simulated session (and its prediction log)."""
    rec = session([("rest", 4.0), ("Situp", 0.0), ("rest", 10.0)], seed=1, realism=SHORT)
    rows = pd.DataFrame(rec.samples, columns=list(DEFAULT_CHANNELS))
    rows.insert(0, "time", T0 + rec.times)
    rows.insert(0, "rate", rec.rate)
    rows.insert(0, "label", "workout")
    rows.insert(0, "device", "wrist-1")
    rows.insert(0, "session", "20261204T080000Z-wrist-1-abcdef")
    part = tmp_path / "recordings" / "date=2026-12-04" / "device=wrist-1"
    part.mkdir(parents=True)
    rows.to_parquet(part / "s.parquet")
    if predictions:
        log = pd.DataFrame(
            [
                {**p.model_dump(), "probabilities": json.dumps(p.probabilities)}
                for p in oracle("wrist-1", rec)
            ]
        )
        (tmp_path / "predictions").mkdir()
        log.to_parquet(tmp_path / "predictions" / "p.parquet")
    return tmp_path, len(rec.sets[0].reps)


def test_logged_predictions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, true_reps = record(tmp_path, predictions=True)
    assert main(["--data", str(data), "--json", str(tmp_path / "out.json")]) == 0
    printed = capsys.readouterr().out
    assert "wrist-1" in printed and "x Situp" in printed
    (report,) = json.loads((tmp_path / "out.json").read_text())
    (found,) = report["sets"]
    assert found["exercise"] == "Situp" and abs(found["reps"] - true_reps) <= 1
    # Repetition events are live; the set's count is the whole set counted again.
    assert abs(len(report["reps"]) - found["reps"]) <= 2


def test_with_the_demo_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = record(tmp_path, predictions=False)
    assert (
        main(["--data", str(data), "--model", str(MODEL), "--json", str(tmp_path / "o.json")]) == 0
    )
    (report,) = json.loads((tmp_path / "o.json").read_text())
    assert report["session"].endswith("abcdef")
    assert all(
        s["exercise"] in {"Situp", "Squat", "Lunge", "Pushup", "Jumping"} for s in report["sets"]
    )
    assert "sets" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    data, _ = record(tmp_path, predictions=False)
    assert main(["--data", str(data)]) == 2  # no model and nothing logged
    assert "no predictions" in capsys.readouterr().err
    assert main(["--data", str(data), "--model", str(tmp_path)]) == 2  # not an artifact
