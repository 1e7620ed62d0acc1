"""Honest evaluation: metrics, grouped splits (no group on both sides), cross-validation,
and counting accuracy against the repetitions people counted."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import DataError
from training.fit import Progress, ProgressEvent, fit_model, predict, with_fields
from training.manifests import training_manifests
from training.params import TrainParams
from training.recorded import load_sessions
from training.windows import WindowSet

logger = logging.getLogger(__name__)


def metrics(y_true: Iterable[str], y_pred: Iterable[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, confusion matrix (rows true, columns predicted), per-class P/R/F1."""
    index = {label: i for i, label in enumerate(labels)}
    n = len(labels)
    cm = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[index[t], index[p]] += 1
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    pr = precision + recall
    f1 = np.divide(2 * precision * recall, pr, out=np.zeros(n), where=pr > 0)
    present = support > 0
    total = int(cm.sum())
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n_windows": total,
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }


def grouped_folds(groups: np.ndarray, k: int | str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs; ``k`` 0/'logo' = leave-one-group-out, else grouped K-fold."""
    unique = sorted(set(groups.tolist()))
    if k in (0, "0", "logo"):
        k = len(unique)
    k = int(k)
    if k < 2 or k > len(unique):
        raise DataError(
            f"cannot make {k} grouped folds from {len(unique)} groups; need 2 <= K <= groups"
        )
    folds = [unique[i::k] for i in range(k)]  # deterministic round-robin over sorted groups
    for test_groups in folds:
        test = np.isin(groups, test_groups)
        yield np.flatnonzero(~test), np.flatnonzero(test)


def check_splittable(ws: WindowSet, min_groups: int = 2) -> None:
    """Every label must occur in ``min_groups`` groups, or some fold cannot learn it."""
    for label in sorted(set(ws.labels)):
        groups = sorted(set(ws.groups[ws.labels == label].tolist()))
        if len(groups) < min_groups:
            raise DataError(
                f"label {label!r} has windows in only {len(groups)} group(s) {groups}: "
                f"too few for grouped splits (needs {min_groups}); record it in more sessions"
            )


def cross_validate(
    ws: WindowSet, params: TrainParams, k: int | str, progress: Progress | None = None
) -> dict[str, Any]:
    """Grouped CV: train per fold, report per-fold, mean and min accuracy and macro-F1."""
    check_splittable(ws)
    labels = sorted(set(ws.labels))
    folds, y_true, y_pred = [], [], []
    splits = list(grouped_folds(ws.groups, k))
    for i, (train, test) in enumerate(splits, 1):
        test_groups = sorted(set(ws.groups[test].tolist()))
        where = {"phase": "cv", "fold": i, "folds": len(splits)}
        if progress:
            text = f"fold {i}/{len(splits)} test {','.join(test_groups)}: training"
            progress(ProgressEvent(text, kind="fold_start", test_groups=test_groups, **where))
        fitted = fit_model(ws.subset(train), params, labels, with_fields(progress, **where))
        pred = np.asarray(labels, dtype=object)[predict(fitted.model, ws.x[test]).argmax(axis=1)]
        m = metrics(ws.labels[test], pred, labels)
        folds.append(
            {"test_groups": test_groups, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
        )
        y_true += ws.labels[test].tolist()
        y_pred += pred.tolist()
        if progress:
            text = (
                f"fold {i}/{len(splits)} test {','.join(test_groups)}: "
                f"accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f}"
            )
            progress(ProgressEvent(text, kind="fold_end", **folds[-1], **where))
        _release()
    acc = [f["accuracy"] for f in folds]
    pooled = metrics(y_true, y_pred, labels)
    return {
        "folds": folds,
        "k": len(splits),
        "mean_accuracy": float(np.mean(acc)),
        "min_accuracy": float(np.min(acc)),
        "mean_macro_f1": float(np.mean([f["macro_f1"] for f in folds])),
        "pooled": pooled,
    }


def _release() -> None:
    """Free the previous model's graph memory between fits."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def plot_confusion(report: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Save the confusion matrix (counts, rows = true label) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, cm = report["labels"], np.asarray(report["confusion_matrix"])
    size = 1.5 + 0.7 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(cm):
        color = "white" if v > cm.max() / 2 else "black"
        ax.text(j, i, str(v), ha="center", va="center", color=color)
    ax.set_title(title or f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- counting accuracy (issue 15) ------------------------------------------------------
def counting_accuracy(pairs: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Exact share, share within ±1, mean absolute error and bias of ``(counted, found)``
    pairs (None when there are none)."""
    errors = np.array([found - counted for counted, found in pairs], dtype=np.float64)
    if not len(errors):
        return {"sessions": 0, "exact": None, "within_1": None, "mae": None, "bias": None}
    return {
        "sessions": len(errors),
        "exact": float(np.mean(errors == 0)),
        "within_1": float(np.mean(np.abs(errors) <= 1)),
        "mae": float(np.mean(np.abs(errors))),
        "bias": float(np.mean(errors)),  # > 0: counts too many
    }


def counted_manifests(data_dir: Path) -> list[dict[str, Any]]:
    """Manifests of the recorder's finished sessions that carry a counted ``reps``.

    Only sessions training may use (:func:`training.recorded.in_training`: not
    excluded, not being deleted); a manifest that cannot be read is logged.
    """
    out = []
    for manifest in training_manifests(data_dir):
        reps = manifest.get("reps")
        if isinstance(reps, int) and not isinstance(reps, bool) and reps >= 0:
            out.append(manifest)
    return out


def evaluate_counting(model_dir: str | Path, data_dir: str | Path) -> dict[str, Any] | None:
    """Counting accuracy of the workout core on the sessions of ``data_dir`` with counted reps.

    Each session is run as ``har reps`` runs it (:mod:`training.reps`: the live
    service's core over the recorded frames, with predictions of ``model_dir``
    on windows cut as the live windower cuts them); the repetitions of the sets
    it finds are compared with the session's ``reps``. None when no session
    carries one (or ``data_dir`` is not a recorder data directory).
    """
    from imu_har.protocol.workout import SetEvent
    from training.reps import OnnxModel, count_session, read_sessions

    data = Path(data_dir)
    manifests = counted_manifests(data) if data.is_dir() else []
    if not manifests:
        return None
    model = OnnxModel(model_dir)
    counted = {str(m["session"]): int(m["reps"]) for m in manifests}
    rows: list[dict[str, Any]] = []
    for session in read_sessions(load_sessions(data, manifests)):
        predictions = model.predictions(
            session.device, session.times, session.values, session.channels
        )
        sets = [m for m in count_session(session, predictions) if isinstance(m, SetEvent)]
        rows.append(
            {
                "session": session.name,
                "device": session.device,
                "label": session.label,
                "counted": counted[session.name],
                "found": sum(s.reps for s in sets),
                "sets": len(sets),
            }
        )
    report = counting_accuracy([(r["counted"], r["found"]) for r in rows])
    return report | {"per_session": rows}
