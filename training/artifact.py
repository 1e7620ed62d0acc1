"""Model artifact directories: ``spec.json`` + ``model.keras`` + ``model.onnx`` + ``model.tflite``.

:func:`save_artifact` writes all four (exports checked against Keras on a few
windows), :func:`load_keras_model` / :func:`load_artifact` read them back with
``safe_mode=True`` and turn any damage or mismatch into :class:`ArtifactError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.model_spec import (
    KERAS_FILE,
    ONNX_FILE,
    SPEC_FILE,
    TFLITE_FILE,
    ModelSpec,
    Normalization,
    load_spec,
)
from training.errors import ArtifactError
from training.export import export_onnx, export_tflite, onnx_predict, tflite_predict
from training.params import TrainParams

logger = logging.getLogger(__name__)
PARITY_TOLERANCE = 1e-4


@dataclass
class Artifact:
    """A loaded artifact: its spec and Keras model."""

    spec: ModelSpec
    model: Any
    path: Path

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for raw windows ``x`` [n, window, channels]."""
        return np.asarray(self.model.predict(np.asarray(x, np.float32), verbose=0))


def content_hash(model, spec_core: dict[str, Any]) -> str:
    """Hex digest of the weights and the spec fields that define the model."""
    digest = hashlib.sha256(json.dumps(spec_core, sort_keys=True, default=str).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def save_artifact(
    model: Any,
    out_dir: str | Path,
    *,
    labels: Sequence[str],
    channels: Sequence[str],
    params: TrainParams,
    mean: np.ndarray,
    std: np.ndarray,
    units: Sequence[str] | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    name: str | None = None,
    check_windows: np.ndarray | None = None,
) -> ModelSpec:
    """Write a complete artifact to ``out_dir`` (replacing its model files) and return its spec.

    ``check_windows`` (raw windows) are used to verify the ONNX and TFLite exports
    match Keras; random windows around the normalization mean are used otherwise.
    """
    if params.rate is None:
        raise ArtifactError("params.rate must be set before saving an artifact")
    out = Path(out_dir)
    norm = Normalization(mean=[float(v) for v in mean], std=[float(v) for v in std])
    core: dict[str, Any] = {
        "labels": list(labels),
        "channels": list(channels),
        "units": list(units) if units is not None else None,
        "window": params.window,
        "hop": params.hop,
        "rate": float(params.rate),
        "normalization": norm.model_dump(),
        "architecture": params.arch,
        "params": params.model_params(),
    }
    files = {"keras": KERAS_FILE, "onnx": ONNX_FILE, "tflite": TFLITE_FILE}
    spec = ModelSpec(
        name=name or f"{params.arch}-w{params.window}",
        version=content_hash(model, core),
        training=training or {},
        metrics=dict(metrics or {}),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        files=files,
        **core,
    )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".partial-") as tmp:
        work = Path(tmp)
        model.save(work / KERAS_FILE)
        export_onnx(model, params, mean, std, work / ONNX_FILE)
        export_tflite(model, params, mean, std, work / TFLITE_FILE)
        x = _check_inputs(check_windows, params.window, mean, std)
        spec.metrics["export_max_abs_diff"] = _parity(model, work, x)
        (work / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n")
        for role_file in [*files.values(), SPEC_FILE]:  # spec last: readers see a whole artifact
            shutil.move(work / role_file, out / role_file)
    logger.info("saved artifact %s (version %s)", out, spec.version)
    return spec


def _check_inputs(x: np.ndarray | None, window: int, mean, std) -> np.ndarray:
    if x is not None and len(x):
        return np.asarray(x[:16], dtype=np.float32)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((4, window, len(mean)))
    return (np.asarray(mean) + noise * np.asarray(std)).astype(np.float32)


def _parity(model, work: Path, x: np.ndarray) -> dict[str, float]:
    ref = model.predict(x, verbose=0)
    diffs = {
        "onnx": float(np.max(np.abs(onnx_predict(work / ONNX_FILE, x) - ref))),
        "tflite": float(np.max(np.abs(tflite_predict(work / TFLITE_FILE, x) - ref))),
    }
    bad = {k: v for k, v in diffs.items() if not v <= PARITY_TOLERANCE}
    if bad:
        raise ArtifactError(f"exported model differs from Keras by {bad}: export is broken")
    return diffs


def read_spec(model_dir: str | Path) -> ModelSpec:
    """The validated spec of an artifact, or :class:`ArtifactError`."""
    try:
        return load_spec(model_dir)
    except PayloadError as exc:
        raise ArtifactError(str(exc)) from exc


def load_keras_model(model_dir: str | Path):
    """Load ``model.keras`` (``safe_mode=True``) and check it against ``spec.json``."""
    return load_artifact(model_dir).model


def load_artifact(model_dir: str | Path) -> Artifact:
    """Load spec and Keras model; :class:`ArtifactError` names what is wrong."""
    path = Path(model_dir)
    spec = read_spec(path)
    keras_path = path / KERAS_FILE
    if not keras_path.is_file():
        raise ArtifactError(f"{keras_path} does not exist: incomplete artifact")
    import keras

    try:
        model = keras.models.load_model(keras_path, safe_mode=True, compile=False)
    except Exception as exc:  # keras raises many types for damaged files
        raise ArtifactError(f"{keras_path} cannot be loaded: {exc}") from exc
    expected_in = (spec.window, len(spec.channels))
    got_in = tuple(model.input_shape[1:])
    if got_in != expected_in or model.output_shape[-1] != len(spec.labels):
        raise ArtifactError(
            f"{keras_path} does not match {SPEC_FILE}: model input {got_in} / "
            f"{model.output_shape[-1]} outputs, spec window/channels {expected_in} / "
            f"{len(spec.labels)} labels"
        )
    return Artifact(spec=spec, model=model, path=path)
