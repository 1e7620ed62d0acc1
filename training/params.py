"""Hyperparameters of one training run, with defaults and ``best.json`` loading."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from training.errors import DataError

ARCHITECTURES = ("bilstm_stats", "bilstm", "original", "stats", "cnn")


def _param(default: Any, text: str, **extra: Any) -> Any:
    """A field with its default and its ``har train``/``har tune`` flag help (training.cli)."""
    return field(default=default, metadata={"help": text, **extra})


@dataclass(frozen=True)
class TrainParams:
    """Everything that shapes a model and its training (window geometry included).

    Each field is declared once, with its default and help text; the command-line
    flags of ``har train`` and ``har tune`` are generated from these fields.
    """

    arch: str = _param("bilstm_stats", "model family", choices=ARCHITECTURES)
    window: int = _param(20, "window length in samples")
    hop: int = _param(5, "samples between windows")
    rate: float | None = _param(None, "grid rate in Hz (unset: the data's rate column)")
    units: int = _param(50, "LSTM units / CNN filters")
    layers: int = _param(2, "stacked layers")
    dropout: float = _param(0.5, "dropout rate")
    noise: float = _param(0.5, "bilstm_stats: std of training-time Gaussian noise on the input")
    lr: float = _param(0.0025, "Adam learning rate")
    batch_size: int = _param(64, "training batch size")
    epochs: int = _param(30, "training epochs")
    seed: int = _param(0, "random seed")

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise DataError(f"unknown architecture {self.arch!r}; choose one of {ARCHITECTURES}")
        if self.window < 2 or self.hop < 1:
            raise DataError(f"window must be >= 2 and hop >= 1, got {self.window}/{self.hop}")
        if self.units < 1 or self.layers < 1 or self.epochs < 1 or self.batch_size < 1:
            raise DataError("units, layers, epochs and batch_size must be positive")
        if not 0.0 <= self.dropout < 1.0 or self.lr <= 0 or self.noise < 0:
            raise DataError(
                "need 0 <= dropout < 1, lr > 0, noise >= 0; "
                f"got {self.dropout}/{self.lr}/{self.noise}"
            )
        if self.rate is not None and self.rate <= 0:
            raise DataError(f"rate must be > 0 Hz, got {self.rate}")

    def with_overrides(self, **changes: Any) -> TrainParams:
        """A copy with the given (non-None) fields changed."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def model_params(self) -> dict[str, Any]:
        """The fields recorded in ``ModelSpec.params``."""
        return asdict(self)


def load_params(path: str | Path, base: TrainParams | None = None) -> TrainParams:
    """Read a ``best.json`` written by ``har tune`` (or any JSON of TrainParams fields)."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read parameters from {path}: {exc}") from exc
    if isinstance(raw, dict) and isinstance(raw.get("params"), dict):
        raw = raw["params"]
    if not isinstance(raw, dict):
        raise DataError(f"{path} must hold a JSON object of parameters")
    known = {f.name for f in fields(TrainParams)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DataError(f"{path}: unknown parameters {unknown}; known: {sorted(known)}")
    return (base or TrainParams()).with_overrides(**raw)
