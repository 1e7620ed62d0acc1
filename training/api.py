"""Python API: data -> windows -> model -> artifact, and evaluation of an artifact.

``train_artifact(table_or_path, out_dir, epochs=3, units=8)`` builds a complete
(tiny, if asked) artifact in one call, e.g. for other services' tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imu_har.protocol.model_spec import ModelSpec
from imu_har.windowing.windows import WindowSpec
from training.artifact import load_artifact, save_artifact
from training.data import Layout, data_rate, read_table, resolve_layout
from training.errors import DataError
from training.evaluation import check_splittable, cross_validate, metrics
from training.fit import Progress, ProgressEvent, fit_model, predict, with_fields
from training.params import TrainParams
from training.windows import WindowSet, make_windows

MIN_WINDOWS_PER_LABEL = 2


def as_table(data: Any) -> pd.DataFrame:
    """A DataFrame as is, a pyarrow Table converted, or read from a path."""
    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):
        data = data.to_pandas()
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise DataError("the table holds no rows")
        return data
    return read_table(data)


def load_windows(
    data: Any,
    params: TrainParams,
    *,
    group_col: str | None = None,
    label_col: str | None = None,
    order_col: str | None = None,
    time_col: str | None = None,
    channels: tuple[str, ...] | None = None,
) -> tuple[WindowSet, Layout, TrainParams]:
    """Read, check and window ``data``; the returned params carry the resolved rate."""
    table = as_table(data)
    layout = resolve_layout(
        table,
        group_col=group_col,
        label_col=label_col,
        order_col=order_col,
        time_col=time_col,
        channels=channels,
    )
    params = params.with_overrides(rate=data_rate(table, params.rate))
    spec = WindowSpec(length=params.window, hop=params.hop, rate=float(params.rate or 0))
    return make_windows(table, layout, spec), layout, params


def summary(ws: WindowSet, source: str) -> dict[str, Any]:
    """What the model was trained on (recorded in ``ModelSpec.training``)."""
    return {
        "source": source,
        "n_windows": len(ws),
        "n_recordings": len(set(ws.recordings.tolist())),
        "groups": sorted(set(ws.groups.tolist())),
        "label_counts": dict(sorted(Counter(ws.labels.tolist()).items())),
    }


def train_artifact(
    data: Any,
    out_dir: str | Path,
    *,
    params: TrainParams | None = None,
    cv: int | str | None = None,
    progress: Progress | None = None,
    name: str | None = None,
    layout: dict[str, Any] | None = None,
    channel_units: Sequence[str] | None = None,
    groups: Mapping[str, str] | None = None,
    grouping: str = "group",
    **overrides: Any,
) -> ModelSpec:
    """Train on all of ``data`` (after optional grouped CV) and save an artifact to ``out_dir``.

    ``overrides`` change TrainParams fields (``epochs=2, units=8, rate=50`` ...);
    ``layout`` passes column choices (``group_col``, ``label_col``, ``order_col``,
    ``time_col``, ``channels``); ``channel_units`` names each channel's unit
    (default: g, deg/s, uT for the default channel names, else none).
    ``groups`` maps the group column's values to the groups that validation keeps
    apart (``har trainer``: session -> subject), named ``grouping`` in the metrics.
    With ``cv``, ``metrics["score"]`` is the grouped validation's mean: the number
    to show for the model (never the training accuracy).
    """
    params = (params or TrainParams()).with_overrides(**overrides)
    _phase(progress, "loading", "reading and windowing the data")
    ws, lay, params = load_windows(data, params, **(layout or {}))
    if groups is not None:
        ws = regroup(ws, groups)
    units = lay.units() if channel_units is None else tuple(channel_units)
    if units is not None and len(units) != len(lay.channels):
        raise DataError(f"{len(units)} channel units given for {len(lay.channels)} channels")
    check_trainable(ws, cv=cv is not None)
    result_metrics: dict[str, Any] = {}
    if cv is not None:
        _phase(progress, "cv", f"grouped validation by {grouping} ({cv})")
        result_metrics["cv"] = cross_validate(ws, params, cv, progress) | {"grouping": grouping}
        result_metrics["score"] = score(result_metrics["cv"])
    _phase(progress, "fit", f"training the model on all {len(ws)} windows")
    fitted = fit_model(ws, params, progress=with_fields(progress, phase="fit"))
    pred = np.asarray(fitted.labels, dtype=object)[predict(fitted.model, ws.x).argmax(axis=1)]
    result_metrics["train_accuracy"] = metrics(ws.labels, pred, fitted.labels)["accuracy"]
    source = str(data) if isinstance(data, str | Path) else type(data).__name__
    _phase(progress, "export", "exporting Keras, ONNX and TFLite and checking their parity")
    return save_artifact(
        fitted.model,
        out_dir,
        labels=fitted.labels,
        channels=lay.channels,
        units=units,
        params=params,
        mean=fitted.mean,
        std=fitted.std,
        training=summary(ws, source) | {"final_loss": fitted.history["loss"][-1]},
        metrics=result_metrics,
        name=name,
        check_windows=ws.x[:: max(1, len(ws) // 16)],
    )


def _phase(progress: Progress | None, phase: str, text: str) -> None:
    if progress:
        progress(ProgressEvent(f"== {text}", kind="phase", phase=phase))


def regroup(ws: WindowSet, groups: Mapping[str, str]) -> WindowSet:
    """The windows with each group value replaced by ``groups[value]`` (e.g. its subject)."""
    missing = sorted(set(ws.groups.tolist()) - set(groups))
    if missing:
        raise DataError(f"no group given for {missing[:5]}")
    mapped = np.asarray([groups[g] for g in ws.groups.tolist()], dtype=object)
    return WindowSet(ws.x, ws.labels, mapped, ws.recordings)


def score(cv: Mapping[str, Any]) -> dict[str, Any]:
    """The headline of a grouped validation: what a model list shows as its accuracy."""
    grouping = cv.get("grouping", "group")
    return {
        "accuracy": cv["mean_accuracy"],
        "macro_f1": cv["mean_macro_f1"],
        "min_accuracy": cv["min_accuracy"],
        "method": f"grouped validation by {grouping}, {cv['k']} folds",
        "n_windows": cv["pooled"]["n_windows"],
    }


def check_trainable(ws: WindowSet, cv: bool = False) -> None:
    """Enough windows per label (and, for CV, enough groups per label)."""
    counts = Counter(ws.labels.tolist())
    if len(counts) < 2:
        raise DataError(f"need at least two labels to train, found {sorted(counts)}")
    few = {k: v for k, v in counts.items() if v < MIN_WINDOWS_PER_LABEL}
    if few:
        raise DataError(f"labels with too few windows to train (< {MIN_WINDOWS_PER_LABEL}): {few}")
    if cv:
        check_splittable(ws)


def evaluate_artifact(model_dir: str | Path, data: Any, **layout: Any) -> dict[str, Any]:
    """Metrics of an artifact on ``data``, windowed exactly as the artifact expects."""
    art = load_artifact(model_dir)
    spec = art.spec
    params = TrainParams(window=spec.window, hop=spec.hop, rate=spec.rate)
    layout.setdefault("channels", tuple(spec.channels))
    ws, _, _ = load_windows(data, params, **layout)
    pred = np.asarray(spec.labels, dtype=object)[predict(art.model, ws.x).argmax(axis=1)]
    extra = sorted(set(ws.labels.tolist()) - set(spec.labels))
    report = metrics(ws.labels, pred, [*spec.labels, *extra])
    report["model"] = {"path": str(model_dir), "name": spec.name, "version": spec.version}
    report["unknown_labels"] = extra
    return report
