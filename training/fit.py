"""Fitting one model on a :class:`WindowSet` (standardization fitted on its windows only).

Progress goes to a ``Progress`` sink as :class:`ProgressEvent` lines: text for
a person (``har train`` prints them) that also carry their fields (phase, fold,
epoch, loss, accuracy...) for a program (``har trainer``'s child process sends
them to the service as JSON lines).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.errors import DataError
from training.models import build_model, compile_model
from training.params import TrainParams
from training.windows import WindowSet

logger = logging.getLogger(__name__)
STD_FLOOR = 1e-6
Progress = Callable[[str], None]


class ProgressEvent(str):
    """A progress line that also carries its structured ``fields``.

    A ``str`` so that every text sink (``print``, ``list.append``, ``har train``'s
    stderr) keeps working unchanged; a structured sink reads ``fields``.
    """

    fields: dict[str, Any]

    def __new__(cls, text: str, **fields: Any) -> ProgressEvent:
        """``ProgressEvent("epoch 3/30 ...", phase="fit", epoch=3, epochs=30, ...)``."""
        event = super().__new__(cls, text)
        event.fields = fields
        return event


def event_fields(line: str) -> dict[str, Any]:
    """The fields of a progress line (a plain string: ``{"message": line}``)."""
    fields = getattr(line, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {"message": str(line)}


def with_fields(progress: Progress | None, **extra: Any) -> Progress | None:
    """A sink that adds ``extra`` (e.g. the fold) to every event before passing it on."""
    if progress is None:
        return None
    sink = progress

    def add(line: str) -> None:
        sink(ProgressEvent(str(line), **(event_fields(line) | extra)))

    return add


def stderr_progress(line: str) -> None:
    """Default progress sink: one line on stderr."""
    print(line, file=sys.stderr, flush=True)


@dataclass
class Fitted:
    """A trained model and what it was trained with."""

    model: Any
    labels: list[str]
    mean: np.ndarray
    std: np.ndarray
    history: dict[str, list[float]]


def standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (floored) std over all samples of the windows ``x``."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), np.maximum(flat.std(axis=0), STD_FLOOR)


def fit_model(
    ws: WindowSet,
    params: TrainParams,
    labels: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Fitted:
    """Train ``params.arch`` on ``ws``; ``labels`` fixes the output order (default: sorted)."""
    import keras

    labels = sorted(set(ws.labels)) if labels is None else list(labels)
    if len(labels) < 2:
        raise DataError(f"need at least two labels to train, found {labels}")
    unknown = sorted(set(ws.labels) - set(labels))
    if unknown:
        raise DataError(f"training windows have labels {unknown} outside {labels}")
    keras.utils.set_random_seed(params.seed)
    mean, std = standardization(ws.x)
    y = np.searchsorted(np.asarray(labels, dtype=object), ws.labels)
    y_onehot = np.eye(len(labels), dtype=np.float32)[y]
    model = build_model(params, ws.x.shape[2], len(labels), mean, std, serving=False)
    compile_model(model, params)
    callbacks = [_EpochLog(params.epochs, progress)] if progress else []
    hist = model.fit(
        ws.x,
        y_onehot,
        batch_size=params.batch_size,
        epochs=params.epochs,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    if params.arch == "original":  # serve the sigmoid-trained logits through a softmax
        serving = build_model(params, ws.x.shape[2], len(labels), mean, std, serving=True)
        serving.set_weights(model.get_weights())
        model = serving
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return Fitted(model, labels, mean, std, history)


def predict(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities for windows ``x``."""
    return np.asarray(model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0))


def _epoch_logger():
    import keras

    class EpochLog(keras.callbacks.Callback):
        def __init__(self, epochs: int, sink: Progress) -> None:
            super().__init__()
            self.epochs, self.sink = epochs, sink

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            loss = float(logs.get("loss", float("nan")))
            acc = float(logs.get("accuracy", float("nan")))
            text = f"  epoch {epoch + 1}/{self.epochs}  loss {loss:.4f}  acc {acc:.4f}"
            self.sink(
                ProgressEvent(
                    text, kind="epoch", epoch=epoch + 1, epochs=self.epochs, loss=loss, accuracy=acc
                )
            )

    return EpochLog


def _EpochLog(epochs: int, sink: Progress):
    return _epoch_logger()(epochs, sink)
