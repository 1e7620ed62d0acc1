"""Cutting a labelled table into windows with the live windower's own code.

Each recording (one group value, plus device for recorder data; split per label
when the order column restarts within a group, as in seed-fitness) is pushed
whole through :func:`imu_har.windowing.windows.cut_windows`, so training sees exactly
the windows the live windower produces. A window's label is the majority of
the raw samples nearest its grid points (``CutWindow.sources``, the rows' positions
in push order: the windower itself decides which rows it drops).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from imu_har.windowing.windows import WindowSpec, cut_windows
from training.data import Layout, check_table
from training.errors import DataError


@dataclass
class WindowSet:
    """Windows (n, window, channels) float32 with label, group and recording per window."""

    x: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    recordings: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> WindowSet:
        """The windows at ``index``."""
        return WindowSet(
            self.x[index], self.labels[index], self.groups[index], self.recordings[index]
        )


def recordings(table: pd.DataFrame, layout: Layout) -> list[tuple[str, pd.DataFrame]]:
    """Split into recordings, each sorted by time/order; a window never crosses one."""
    keys = [layout.group_col] + ([layout.device_col] if layout.device_col else [])
    out = []
    for key, part in table.groupby(keys, sort=True, dropna=False, observed=True):
        key_t = key if isinstance(key, tuple) else (key,)
        name = "/".join(f"{k}={v}" for k, v in zip(keys, key_t, strict=True))
        sort_col = layout.time_col or layout.order_col
        restarts = sort_col is not None and bool(part[sort_col].duplicated().any())
        if restarts and part[layout.label_col].nunique() > 1:
            # Time/order restarts inside the group: one recording per label (seed-fitness).
            for label, sub in part.groupby(layout.label_col, sort=True, observed=True):
                out.append((f"{name}/label={label}", _sorted(sub, layout, f"{name}/label={label}")))
        else:
            out.append((name, _sorted(part, layout, name)))
    return out


def _sorted(part: pd.DataFrame, layout: Layout, name: str) -> pd.DataFrame:
    """Rows in time (else order) order; repeated order values make the order ambiguous."""
    if layout.time_col is not None:  # repeated times are dropped by the windower, as live
        return part.sort_values(layout.time_col, kind="stable")
    if layout.order_col is not None:
        if part[layout.order_col].duplicated().any():
            raise DataError(
                f"recording {name}: order column {layout.order_col!r} repeats values, "
                "so the sample order is ambiguous"
            )
        return part.sort_values(layout.order_col, kind="stable")
    return part


def make_windows(table: pd.DataFrame, layout: Layout, spec: WindowSpec) -> WindowSet:
    """Cut every recording; :class:`DataError` if a recording is shorter than one window."""
    check_table(table, layout)
    xs, labels, groups, recs = [], [], [], []
    for name, part in recordings(table, layout):
        values = part[list(layout.channels)].to_numpy(dtype=np.float64)
        times = _times(part, layout, spec.rate)
        windows = cut_windows(values, spec, times)
        if not windows:
            raise DataError(
                f"recording {name} has {len(part)} samples, too short for one window of "
                f"{spec.length} samples at {spec.rate:g} Hz ({spec.length / spec.rate:g} s)"
            )
        part_labels = part[layout.label_col].astype(str).to_numpy()
        group = str(part[layout.group_col].iloc[0])
        for w in windows:
            xs.append(w.samples)
            labels.append(Counter(part_labels[w.sources]).most_common(1)[0][0])
            groups.append(group)
            recs.append(name)
    return WindowSet(
        np.stack(xs).astype(np.float32),
        np.asarray(labels, dtype=object),
        np.asarray(groups, dtype=object),
        np.asarray(recs, dtype=object),
    )


def _times(part: pd.DataFrame, layout: Layout, rate: float) -> np.ndarray:
    """Sample times: the time column, else rank / rate (resampling is then the identity)."""
    if layout.time_col is not None:
        return part[layout.time_col].to_numpy(dtype=np.float64)
    return np.arange(len(part), dtype=np.float64) / rate
