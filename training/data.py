"""Reading labelled IMU tables: the recorder's Parquet dataset or any Parquet/CSV table.

A table has one row per sample: a group column (e.g. session), a label column,
channel columns, and optionally a time column (seconds) or an order column
(sample rank). :func:`resolve_layout` picks the columns (recorder defaults:
group ``session``, label ``label``, time ``time``, recordings split by
``device`` too) and :func:`check_table` rejects unusable data with a
:class:`DataError` naming the problem, labels that are not names included
(they would only fail as the model spec is written, after the whole fit).

A recorder data directory is read as the trainer reads it: sessions its
manifests leave out of training (excluded, being deleted) are not read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imu_har.protocol.codec import DEFAULT_CHANNELS, DEFAULT_UNITS
from imu_har.protocol.messages import MAX_LABELS, validate_name
from training.errors import DataError
from training.manifests import SESSIONS, in_training, read_manifests

logger = logging.getLogger(__name__)

RECORDINGS = "recordings"  # DIR/recordings/date=.../device=.../<session>[-NNNN].parquet
_PART = re.compile(r"(.+)-\d{4}")  # <session>-NNNN: the second and later parts of a session
RECORDER_COLUMNS = {"session", "device", "label", "time", "seq", "receive_time"}
META_COLUMNS = {
    "session",
    "device",
    "subject",
    "label",
    "activity",
    "seq",
    "sample",
    "device_time",
    "receive_time",
    "time",
    "rate",
    "date",
    "index",
}


@dataclass(frozen=True)
class Layout:
    """Which columns mean what."""

    group_col: str
    label_col: str
    channels: tuple[str, ...]
    order_col: str | None = None
    time_col: str | None = None
    device_col: str | None = None  # recorder data: a recording is (group, device)

    def units(self) -> tuple[str, ...] | None:
        """Default units when every channel is a default one (acc_x: g, ...), else unknown."""
        known = dict(zip(DEFAULT_CHANNELS, DEFAULT_UNITS, strict=True))
        if all(c in known for c in self.channels):
            return tuple(known[c] for c in self.channels)
        return None


def read_table(path: str | Path) -> pd.DataFrame:
    """Load a Parquet file, a dataset directory (``**/*.parquet``) or a CSV file.

    For the recorder's data directory only ``recordings/`` is read (not its
    prediction log); hidden files and directories (temporaries) are skipped.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p} does not exist")
    try:
        if p.is_dir():
            table = pd.concat([pd.read_parquet(f) for f in _dataset_files(p)], ignore_index=True)
        elif p.suffix.lower() in {".csv", ".txt"}:
            table = pd.read_csv(p)
        elif p.suffix.lower() in {".parquet", ".pq"}:
            table = pd.read_parquet(p)
        else:
            raise DataError(f"{p}: unknown file type {p.suffix!r} (use .parquet or .csv)")
    except DataError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for unreadable files
        raise DataError(f"cannot read {p}: {exc}") from exc
    if table.empty:
        raise DataError(f"{p} holds no rows")
    return table


def _dataset_files(path: Path) -> list[Path]:
    """Parquet files of a dataset dir: ``recordings/`` of a recorder data dir, no hidden files.

    In a recorder data dir (``DIR`` or ``DIR/recordings`` given, next to
    ``DIR/sessions``) the parts of sessions left out of training are skipped.
    """
    root = path / RECORDINGS if (path / RECORDINGS).is_dir() else path
    files = sorted(
        f
        for f in root.rglob("*.parquet")
        if not any(part.startswith(".") for part in f.relative_to(root).parts)
    )
    if not files:
        raise DataError(f"{root} holds no .parquet files")
    left_out = _left_out_sessions(root)
    kept = [f for f in files if _session_of(f) not in left_out]
    if len(kept) < len(files):
        logger.info(
            "%d Parquet files of %d sessions left out of training (excluded or deleting)",
            len(files) - len(kept),
            len(left_out),
        )
    if not kept:
        raise DataError(f"every session of {root} is excluded from training (or being deleted)")
    return kept


def _left_out_sessions(root: Path) -> set[str]:
    """Sessions the manifests leave out, when ``root`` is a recorder's ``recordings/``."""
    if root.name != RECORDINGS or not (root.parent / SESSIONS).is_dir():
        return set()
    return {str(m.get("session")) for m in read_manifests(root.parent) if not in_training(m)}


def _session_of(part: Path) -> str:
    """The session a recorder part belongs to, by its name (as the recorder finds parts)."""
    more = _PART.fullmatch(part.stem)
    return more.group(1) if more else part.stem


def resolve_layout(
    table: pd.DataFrame,
    *,
    group_col: str | None = None,
    label_col: str | None = None,
    order_col: str | None = None,
    time_col: str | None = None,
    channels: tuple[str, ...] | None = None,
) -> Layout:
    """Fill in defaults (recorder layout when its columns are present) and check names."""
    cols = set(table.columns)
    recorder = cols >= RECORDER_COLUMNS
    group = group_col or "session"
    label = label_col or ("label" if "label" in cols or recorder else "activity")
    if time_col is None and order_col is None and "time" in cols:
        time_col = "time"
    device = "device" if recorder and group != "device" else None
    if channels is None:
        if set(DEFAULT_CHANNELS) <= cols:
            channels = DEFAULT_CHANNELS
        else:
            skip = META_COLUMNS | {group, label, order_col, time_col}
            numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
            channels = tuple(c for c in numeric if c not in skip)
    layout = Layout(group, label, tuple(channels), order_col, time_col, device)
    _check_names(table, layout)
    return layout


def _check_names(table: pd.DataFrame, layout: Layout) -> None:
    if not layout.channels:
        raise DataError("no channel columns found; name them with --channels")
    if len(set(layout.channels)) != len(layout.channels):
        raise DataError(f"channels repeat: {list(layout.channels)}")
    roles: dict[str, str | None] = {"group": layout.group_col, "label": layout.label_col}
    roles |= {"order": layout.order_col, "time": layout.time_col}
    available = list(table.columns)
    for role, name in roles.items():
        if name is not None and name not in table.columns:
            raise DataError(f"{role} column {name!r} not found; columns are {available}")
    unknown = [c for c in layout.channels if c not in table.columns]
    if unknown:
        raise DataError(f"unknown channels {unknown}; columns are {available}")
    for c in layout.channels:
        if not pd.api.types.is_numeric_dtype(table[c]):
            raise DataError(f"channel {c!r} is not numeric (dtype {table[c].dtype})")


def check_table(table: pd.DataFrame, layout: Layout) -> None:
    """Reject NaN/infinite values in the columns training uses, and labels that are not names."""
    used = [layout.group_col, layout.label_col, *layout.channels]
    used += [c for c in (layout.order_col, layout.time_col, layout.device_col) if c]
    missing = table[used].isna()
    if missing.any().any():
        bad_cols = [c for c in used if missing[c].any()]
        rows = np.flatnonzero(missing.any(axis=1).to_numpy())
        raise DataError(
            f"{len(rows)} rows have missing (NaN/null) values in {bad_cols}, "
            f"first at row {int(rows[0])}; clean or drop them first"
        )
    numeric = table[list(layout.channels)].to_numpy(dtype=np.float64)
    if not np.isfinite(numeric).all():
        raise DataError("channel values include +-inf; clean them first")
    check_labels(pd.unique(table[layout.label_col]))


def check_labels(labels: Iterable[object]) -> None:
    """Every label (as text, as the windows carry it) is a name, and not too many of them.

    The rule is the protocol's (:func:`imu_har.protocol.messages.validate_name`):
    a label becomes a class of the model spec, a prediction's label and a
    workout's exercise. A :class:`DataError` names each bad label (``%r``).
    """
    distinct = sorted({str(label) for label in labels})
    bad = []
    for label in distinct:
        try:
            validate_name(label)
        except ValueError:
            bad.append(label)
    if bad:
        shown = ", ".join(repr(b[:80]) for b in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise DataError(
            f"{len(bad)} label{'s are not names' if len(bad) > 1 else ' is not a name'}: {shown} "
            "(a label is 1-64 letters, digits, spaces, '_' or '-', starting with a letter "
            "or digit); rename them first"
        )
    if len(distinct) > MAX_LABELS:
        raise DataError(f"{len(distinct)} labels: a model has at most {MAX_LABELS}")


def data_rate(table: pd.DataFrame, rate: float | None) -> float:
    """The grid rate: given, else the median of a ``rate`` column."""
    if rate is not None:
        return float(rate)
    if "rate" in table.columns and table["rate"].notna().any():
        return float(table["rate"].median())
    raise DataError("the data has no 'rate' column: give the sample rate with --rate HZ")
