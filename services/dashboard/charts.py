"""Tables and Altair charts built from store views (pure: data in, chart out)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from imu_har.messages import GroundTruth, Prediction
from services.dashboard.store import DeviceView, PlotFrame


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
    keep = times >= -history
    table = pd.DataFrame(samples[keep], columns=list(layout[0]), index=times[keep])
    table.index.name = "seconds"
    groups: dict[str, list[str]] = {}
    for channel, unit in zip(*layout, strict=True):
        groups.setdefault(unit, []).append(channel)
    return {unit: table[channels] for unit, channels in groups.items()}


def probabilities_chart(prediction: Prediction) -> alt.Chart:
    """Horizontal bars: the probability of each class in the newest prediction."""
    data = pd.DataFrame(
        {"label": list(prediction.probabilities), "p": list(prediction.probabilities.values())}
    )
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("p:Q", title="probability", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("label:N", title=None, sort=list(prediction.probabilities)),
            color=alt.condition(
                alt.datum.label == prediction.label, alt.value("#d62728"), alt.value("#1f77b4")
            ),
            tooltip=["label", alt.Tooltip("p:Q", format=".3f")],
        )
    )


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


def timeline_chart(table: pd.DataFrame, history: float) -> alt.Chart:
    """Coloured bars over time: what was predicted (smoothed) and, if known, the truth."""
    recent = table[table["end"] >= -history].copy()
    recent["start"] = recent["start"].clip(lower=-history)
    return (
        alt.Chart(recent)
        .mark_bar()
        .encode(
            x=alt.X("start:Q", title="seconds", scale=alt.Scale(domain=[-history, 0])),
            x2="end:Q",
            y=alt.Y("row:N", title=None, sort=["predicted", "truth"]),
            color=alt.Color("label:N", legend=alt.Legend(orient="right", title=None)),
            tooltip=["row", "label"],
        )
    )


def latency_ms(view: DeviceView) -> tuple[float | None, float | None]:
    """Median classifier latency and median frame-to-dashboard latency (ms), recent."""
    recent = view.predictions[-20:]
    if not recent:
        return None, None
    classifier = statistics.median(p.latency_ms for _, p in recent)
    sourced = [(seen - p.source_time) * 1000 for seen, p in recent if p.source_time > 0]
    return classifier, (statistics.median(sourced) if sourced else None)


def confusion_chart(matrix: Sequence[Sequence[float]], labels: Sequence[str]) -> alt.Chart:
    """Heat map of a confusion matrix (rows = true label, columns = predicted)."""
    data = pd.DataFrame(
        [
            {"true": labels[i], "predicted": labels[j], "count": value}
            for i, row in enumerate(matrix)
            for j, value in enumerate(row)
        ]
    )
    base = alt.Chart(data).encode(
        x=alt.X("predicted:N", sort=list(labels)),
        y=alt.Y("true:N", sort=list(labels)),
    )
    heat = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")))
    text = base.mark_text().encode(text="count:Q")
    return heat + text


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
