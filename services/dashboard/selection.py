"""What the Train page shows before it sends ``train``: sessions, seconds and windows per label.

Pure (no Streamlit, no MQTT, no TensorFlow: ``training.params`` imports neither).
Windows are counted with the windowing code training itself uses
(:class:`imu_har.windowing.windows.DeviceWindower`, as ``training.windows``
does per session): the session's sample times sorted, pushed whole, gaps over
``max_gap`` restarting the grid. So the count is the number of windows the
trainer will cut at that window, hop and rate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from imu_har.protocol.model_spec import ModelSpec
from imu_har.windowing.windows import DeviceWindower, WindowSpec
from services.dashboard.sessions import SessionInfo
from training.params import TrainParams

DEFAULTS = TrainParams()  # the trainer's defaults (har train's): one place


@dataclass(frozen=True)
class Geometry:
    """Window length and hop in samples and the grid rate (None: the data's own rate)."""

    window: int
    hop: int
    rate: float | None


def default_geometry(spec: ModelSpec | None) -> Geometry:
    """The live model's window, hop and rate; ``TrainParams``' defaults without one."""
    if spec is not None:
        return Geometry(spec.window, spec.hop, spec.rate)
    return Geometry(DEFAULTS.window, DEFAULTS.hop, DEFAULTS.rate)


@dataclass(frozen=True)
class Choice:
    """Which sessions to train on: every one matching all non-empty filters, none excluded."""

    labels: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    def matches(self, info: SessionInfo) -> bool:
        """Whether ``info`` is chosen (a session left out of training never is)."""
        if info.excluded or info.error is not None:
            return False
        return all(
            not wanted or value in wanted
            for wanted, value in (
                (self.labels, info.label),
                (self.subjects, info.subject),
                (self.devices, info.device),
            )
        )

    def as_filter(self) -> dict[str, list[str]]:
        """The ``filter`` of the trainer's ``train`` command (only the fields set)."""
        parts = {"labels": self.labels, "subjects": self.subjects, "devices": self.devices}
        return {key: list(values) for key, values in parts.items() if values}


def chosen(sessions: Iterable[SessionInfo], choice: Choice) -> list[SessionInfo]:
    """The sessions ``choice`` picks."""
    return [s for s in sessions if choice.matches(s)]


def read_session(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """A session's sample times (every part) and its ``rate`` column (empty if none)."""
    tables = [pq.read_table(p, columns=_present(p, ("time", "rate"))) for p in paths]
    table = pa.concat_tables(tables, promote_options="default")
    names = table.column_names
    times = table["time"].to_numpy() if "time" in names else np.zeros(0)
    rates = table["rate"].to_numpy(zero_copy_only=False) if "rate" in names else np.zeros(0)
    return np.asarray(times, dtype=np.float64), np.asarray(rates, dtype=np.float64)


def _present(path: Path, columns: tuple[str, ...]) -> list[str]:
    names = set(pq.read_schema(path).names)
    return [c for c in columns if c in names]


def rate_counts(rates: np.ndarray) -> dict[float, int]:
    """How many rows have each ``rate`` (a session has one or a few)."""
    values, counts = np.unique(rates[np.isfinite(rates)], return_counts=True)
    return {float(v): int(c) for v, c in zip(values, counts, strict=True)}


def data_rate(counts: Iterable[dict[float, int]]) -> float | None:
    """The rate the trainer grids at when none is given: the median ``rate`` of all rows."""
    total: Counter[float] = Counter()
    for one in counts:
        total.update(one)
    if not total:
        return None
    values = np.array(sorted(total))
    rows = np.array([total[v] for v in values])
    return float(np.median(np.repeat(values, rows)))


def count_windows(times: np.ndarray, window: int, hop: int, rate: float) -> int:
    """Windows training cuts from one session with these sample times."""
    if len(times) == 0:
        return 0
    ordered = np.sort(times, kind="stable")  # training sorts each recording by time
    cutter = DeviceWindower(WindowSpec(window, hop, rate), 1, track_sources=False)
    return len(cutter.push(ordered, np.zeros((len(ordered), 1))).windows)


@dataclass(frozen=True)
class SessionCount:
    """One chosen session: its label, seconds of samples and windows at the geometry."""

    session: str
    label: str
    subject: str
    seconds: float
    windows: int


def label_table(counts: Sequence[SessionCount]) -> pd.DataFrame:
    """Sessions, subjects, seconds and windows per label."""
    columns = ["label", "sessions", "subjects", "seconds", "windows"]
    if not counts:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame([c.__dict__ for c in counts])
    grouped = frame.groupby("label").agg(
        sessions=("session", "count"),
        subjects=("subject", lambda s: len({x for x in s if x})),
        seconds=("seconds", "sum"),
        windows=("windows", "sum"),
    )
    grouped["seconds"] = grouped["seconds"].round(1)
    return grouped.reset_index()[columns]


def problems(counts: Sequence[SessionCount], cv: str | int) -> list[str]:
    """Why the trainer would refuse these sessions, in words (empty: it can train)."""
    out = []
    per_label = Counter(c.label for c in counts if c.windows > 0)
    if len(per_label) < 2:
        out.append("Training needs windows of at least two labels.")
    short = sorted({c.session for c in counts if c.windows == 0})
    if short:
        out.append(f"{len(short)} session(s) are shorter than one window and add nothing.")
    if cv in ("subject", "session"):
        key = "subject" if cv == "subject" else "session"
        for label in sorted(per_label):
            groups = {getattr(c, key) for c in counts if c.label == label and c.windows > 0}
            groups.discard("")
            if len(groups) < 2:
                out.append(
                    f"Label {label!r} comes from {len(groups)} {key}(s): grouped validation by "
                    f"{key} needs at least two."
                )
    return out
