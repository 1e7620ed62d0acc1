"""har train -> artifact -> har evaluate, export parity, round trip, damage (TF, tiny models)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from imu_har.protocol.model_spec import KERAS_FILE, ONNX_FILE, SPEC_FILE, TFLITE_FILE
from imu_har.sim.simulation import synthetic_recordings
from training.api import load_windows
from training.artifact import load_artifact, load_keras_model, read_spec, save_artifact
from training.cli import evaluate_main, train_main
from training.errors import ArtifactError, DataError
from training.export import onnx_predict, tflite_predict
from training.fit import fit_model
from training.params import TrainParams

pytestmark = [pytest.mark.tf, pytest.mark.slow]
LABELS = ("Pushup", "Situp", "Jumping")  # prone / supine / upright: separable
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")  # mag varies by heading


@dataclass
class Trained:
    model_dir: Path
    eval_data: Path  # recordings of wearers the model never saw
    windows: np.ndarray


def _sim(path: Path, sessions: int, seed: int) -> Path:
    synthetic_recordings(
        sessions, 10.0, rate=50.0, seed=seed, labels=LABELS
    ).to_pandas().to_parquet(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("train")
    data = _sim(root / "train.parquet", 3, seed=11)
    argv = ["--data", str(data), "--out", str(root / "model"), "--rate", "25", "--window", "25"]
    argv += ["--hop", "6", "--units", "8", "--layers", "1", "--epochs", "15", "--cv", "logo"]
    argv += ["--batch-size", "16", "--channels", ",".join(CHANNELS)]
    assert train_main([*argv, "--quiet"]) == 0
    eval_data = _sim(root / "eval.parquet", 2, seed=99)
    spec = read_spec(root / "model")
    params = TrainParams(window=spec.window, hop=spec.hop, rate=spec.rate)
    windows = load_windows(eval_data, params, channels=tuple(spec.channels))[0].x
    return Trained(root / "model", eval_data, windows)


def test_separable_data_reaches_high_grouped_cv_accuracy(trained: Trained) -> None:
    spec = read_spec(trained.model_dir)
    cv = spec.metrics["cv"]
    assert isinstance(cv, dict)
    assert [f["test_groups"] for f in cv["folds"]] == [["0"], ["1"], ["2"]]  # one group per fold
    assert cv["mean_accuracy"] >= 0.9, cv
    assert spec.labels == sorted(LABELS) and spec.rate == 25.0 and spec.window == 25
    assert spec.channels == list(CHANNELS) and spec.units == ["g"] * 3 + ["deg/s"] * 3
    assert spec.normalization is not None and len(spec.normalization.mean) == 6
    assert set(spec.files.values()) == {KERAS_FILE, ONNX_FILE, TFLITE_FILE}
    assert spec.training["groups"] == ["0", "1", "2"]


def test_exports_match_keras_for_any_batch_size(trained: Trained) -> None:
    model = load_keras_model(trained.model_dir)
    for x in (trained.windows[:1], trained.windows[:7], trained.windows):
        ref = model.predict(x, verbose=0)
        np.testing.assert_allclose(ref.sum(axis=1), 1.0, atol=1e-5)  # softmax
        np.testing.assert_allclose(onnx_predict(trained.model_dir / ONNX_FILE, x), ref, atol=1e-5)
        np.testing.assert_allclose(
            tflite_predict(trained.model_dir / TFLITE_FILE, x), ref, atol=1e-5
        )


def test_round_trip_gives_identical_predictions(trained: Trained, tmp_path: Path) -> None:
    art = load_artifact(trained.model_dir)
    spec = art.spec
    assert spec.normalization is not None
    again = save_artifact(
        art.model,
        tmp_path / "copy",
        labels=spec.labels,
        channels=spec.channels,
        units=spec.units,
        params=TrainParams(**spec.params),  # type: ignore[arg-type]
        mean=np.asarray(spec.normalization.mean),
        std=np.asarray(spec.normalization.std),
    )
    assert again.version == spec.version  # content hash: same weights and spec
    copy = load_artifact(tmp_path / "copy")
    np.testing.assert_array_equal(copy.predict(trained.windows), art.predict(trained.windows))


def test_evaluate_cli_writes_report_and_png(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"
    argv = ["--model", str(trained.model_dir), "--data", str(trained.eval_data)]
    assert evaluate_main([*argv, "--json", str(report_path)]) == 0
    assert "accuracy" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    for key in ("accuracy", "macro_f1", "labels", "confusion_matrix", "per_class", "n_windows"):
        assert key in report
    assert report["n_windows"] == len(trained.windows)
    assert report["accuracy"] >= 0.8, report
    assert set(report["per_class"]["Situp"]) >= {"precision", "recall"}
    assert report_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_damaged_or_mismatched_artifacts_are_named(trained: Trained, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(trained.model_dir, broken)
    (broken / KERAS_FILE).write_bytes((broken / KERAS_FILE).read_bytes()[:500])
    with pytest.raises(ArtifactError, match="cannot be loaded"):
        load_artifact(broken)
    assert evaluate_main(["--model", str(broken), "--data", str(trained.eval_data)]) == 2

    mismatched = tmp_path / "mismatched"
    shutil.copytree(trained.model_dir, mismatched)
    spec = json.loads((mismatched / SPEC_FILE).read_text())
    spec["window"] = 40
    (mismatched / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="does not match"):
        load_artifact(mismatched)
    (mismatched / SPEC_FILE).write_text("{not json")
    with pytest.raises(DataError, match="not a valid spec"):
        load_artifact(mismatched)
    (mismatched / SPEC_FILE).unlink()
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact(mismatched)


def test_original_architecture_trains_sigmoid_and_serves_softmax() -> None:
    table = synthetic_recordings(2, 3.0, rate=25.0, seed=3, labels=LABELS[:2]).to_pandas()
    params = TrainParams(arch="original", window=20, hop=10, rate=25.0, units=4, epochs=1)
    ws = load_windows(table, params)[0]
    fitted = fit_model(ws, params)
    assert fitted.model.get_layer("probabilities").activation.__name__ == "softmax"
    from training.models import build_model

    head = build_model(params, 9, 2, fitted.mean, fitted.std, serving=False)
    assert head.get_layer("probabilities").activation.__name__ == "sigmoid"  # as trained
    out = fitted.model.predict(ws.x[:5], verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
