"""Tables and Vega-Lite chart specs built from store views (pure: data in, chart out).

Specs are plain dicts drawn with ``st.vega_lite_chart``: building them is cheap,
unlike ``st.line_chart`` or Altair, which validate and reshape on every rerun.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from imu_har.protocol.messages import GroundTruth, Prediction
from services.dashboard.store import DeviceView, PlotFrame

Spec = dict[str, Any]
MAX_POINTS = 400  # per plotted line: more only costs bandwidth and browser time
MAX_BARS = 20  # classes drawn in the probability chart


def imu_frames(plot: Sequence[PlotFrame], now: float, history: float) -> dict[str, pd.DataFrame]:
    """The last ``history`` seconds of IMU samples, one DataFrame per unit (g, deg/s, uT).

    Only frames with the newest frame's channel layout are used; the index is
    seconds relative to ``now`` (negative = past).
    """
    if not plot:
        return {}
    layout = (plot[-1].channels, plot[-1].units)
    frames = [f for f in plot if (f.channels, f.units) == layout]
    times = np.concatenate([f.times for f in frames]) - now
    samples = np.concatenate([f.samples for f in frames])
    keep = np.flatnonzero(times >= -history)
    keep = keep[:: max(1, len(keep) // MAX_POINTS)]
    table = pd.DataFrame(samples[keep], columns=list(layout[0]), index=times[keep])
    table.index.name = "seconds"
    groups: dict[str, list[str]] = {}
    for channel, unit in zip(*layout, strict=True):
        groups.setdefault(unit, []).append(channel)
    return {unit: table[channels] for unit, channels in groups.items()}


def line_spec(channels: Sequence[str], unit: str, height: int = 240, x: str = "seconds") -> Spec:
    """Vega-Lite lines of the ``channels`` columns of a wide table with an ``x`` column.

    The table is folded into long form in the browser, so the server does no
    melting and no Altair validation (about 100x cheaper than ``st.line_chart``).
    """
    return {
        "height": height,
        "transform": [{"fold": list(channels), "as": ["channel", "value"]}],
        "mark": {"type": "line", "strokeWidth": 1.2, "clip": True},
        "encoding": {
            "x": {"field": x, "type": "quantitative", "title": x},
            "y": {"field": "value", "type": "quantitative", "title": unit},
            "color": {
                "field": "channel",
                "type": "nominal",
                "sort": list(channels),
                "legend": {"orient": "bottom", "title": None},
            },
        },
    }


def probabilities_chart(prediction: Prediction) -> tuple[pd.DataFrame, Spec]:
    """Horizontal bars: the probability of each class (the most probable 20); predicted in red.

    A prediction may carry any number of classes (a 256 KiB message holds thousands):
    the chart's height grows with each bar, so only the top ``MAX_BARS`` are drawn.
    """
    top = {k for k, _ in sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])[:MAX_BARS]}
    shown = [label for label in prediction.probabilities if label in top]  # in the model's order
    data = pd.DataFrame({"label": shown, "p": [prediction.probabilities[k] for k in shown]})
    data["predicted"] = data["label"] == prediction.label
    spec: Spec = {
        "height": 70 + 26 * len(data),
        "mark": "bar",
        "encoding": {
            "x": {
                "field": "p",
                "type": "quantitative",
                "title": "probability",
                "scale": {"domain": [0, 1]},
            },
            "y": {
                "field": "label",
                "type": "nominal",
                "title": None,
                "sort": shown,
            },
            "color": {
                "field": "predicted",
                "type": "nominal",
                "legend": None,
                "scale": {"domain": [False, True], "range": ["#1f77b4", "#d62728"]},
            },
            "tooltip": [{"field": "label"}, {"field": "p", "format": ".3f"}],
        },
    }
    return data, spec


def timeline_table(
    predictions: Sequence[tuple[float, Prediction]],
    truths: Sequence[GroundTruth],
    now: float,
) -> pd.DataFrame:
    """Segments (start, end, row, label) of smoothed predictions and ground truth."""
    rows = [
        {
            "start": p.window_start - now,
            "end": p.window_end - now,
            "row": "predicted",
            "label": p.smoothed_label,
        }
        for _, p in predictions
    ]
    for i, truth in enumerate(truths):
        end = truths[i + 1].time if i + 1 < len(truths) else (truth.until or now)
        rows.append(
            {
                "start": truth.time - now,
                "end": min(end, now) - now,
                "row": "truth",
                "label": truth.label,
            }
        )
    return pd.DataFrame(rows, columns=["start", "end", "row", "label"])


def timeline_chart(table: pd.DataFrame, history: float) -> tuple[pd.DataFrame, Spec]:
    """Coloured bars over time: what was predicted (smoothed) and, if known, the truth."""
    recent = table[table["end"] >= -history].copy()
    recent["start"] = recent["start"].clip(lower=-history)
    spec: Spec = {
        "height": 130,
        "mark": "bar",
        "encoding": {
            "x": {
                "field": "start",
                "type": "quantitative",
                "title": "seconds",
                "scale": {"domain": [-history, 0]},
            },
            "x2": {"field": "end"},
            "y": {"field": "row", "type": "nominal", "title": None, "sort": ["predicted", "truth"]},
            "color": {
                "field": "label",
                "type": "nominal",
                "legend": {"orient": "right", "title": None},
            },
            "tooltip": [{"field": "row"}, {"field": "label"}],
        },
    }
    return recent, spec


def latency_ms(view: DeviceView) -> tuple[float | None, float | None]:
    """Median classifier latency and median frame-to-dashboard latency (ms), recent."""
    recent = view.predictions[-20:]
    if not recent:
        return None, None
    classifier = statistics.median(p.latency_ms for _, p in recent)
    sourced = [(seen - p.source_time) * 1000 for seen, p in recent if p.source_time > 0]
    return classifier, (statistics.median(sourced) if sourced else None)


def confusion_chart(table: pd.DataFrame) -> tuple[pd.DataFrame, Spec]:
    """Heat map of a confusion table (rows = true label, columns = predicted)."""
    labels = [str(label) for label in table.index]
    data = pd.DataFrame(
        [
            {"true": labels[i], "predicted": labels[j], "count": float(table.iat[i, j])}
            for i in range(len(labels))
            for j in range(len(labels))
        ]
    )
    axes = {
        "x": {"field": "predicted", "type": "nominal", "sort": labels},
        "y": {"field": "true", "type": "nominal", "sort": labels},
    }
    spec: Spec = {
        "height": 110 + 36 * len(labels),
        "layer": [
            {
                "mark": "rect",
                "encoding": {
                    **axes,
                    "color": {
                        "field": "count",
                        "type": "quantitative",
                        "scale": {"scheme": "blues"},
                    },
                },
            },
            {
                "mark": "text",
                "encoding": {**axes, "text": {"field": "count", "type": "quantitative"}},
            },
        ],
    }
    return data, spec


def confusion_table(matrix: Sequence[Sequence[float]], labels: Sequence[str]) -> pd.DataFrame:
    """The confusion matrix as a labelled DataFrame; raises ValueError if ragged."""
    if not isinstance(matrix, list) or not all(isinstance(row, list) for row in matrix):
        raise ValueError("confusion matrix is not a list of lists")
    if len(matrix) != len(labels) or any(len(row) != len(labels) for row in matrix):
        raise ValueError("confusion matrix does not match the labels")
    if not all(isinstance(v, int | float) for row in matrix for v in row):
        raise ValueError("confusion matrix holds non-numbers")
    return pd.DataFrame(
        [list(row) for row in matrix],
        index=pd.Index(labels, name="true"),
        columns=pd.Index(labels, name="predicted"),
    )
