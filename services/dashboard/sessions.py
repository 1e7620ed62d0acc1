"""Recorded sessions in the data directory, read with pyarrow (no Streamlit here).

The recorder writes ``recordings/date=<day>/device=<id>/<session>.parquet``
(long sessions in parts ``<session>-0001.parquet``, ...) and a manifest
``sessions/<session>.json`` (a ``<session>.json`` beside the data is read too).
A session is listed from its manifest and the Parquet footers (row counts)
without loading its rows; unreadable files are reported, not raised.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

TIME_COLUMNS = ("time", "timestamp", "t", "sample_time")
MAX_SESSIONS = 5000
MAX_MANIFEST_BYTES = 1 << 20  # the recorder writes ~1 KiB; a bigger file is not read
MAX_PREVIEW_COLUMNS = 32  # numeric columns plotted (the recorder writes 9)
_PART = re.compile(r"^(.+)-(\d{4})$")


@dataclass(frozen=True)
class SessionInfo:
    """One recorded session: its Parquet parts and what its manifest says."""

    session: str
    paths: tuple[Path, ...]
    device: str
    date: str
    label: str
    subject: str
    rows: int
    duration: float | None
    manifest: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def excluded(self) -> bool:
        """Left out of training (the manifest's ``excluded``, set by the recorder)."""
        return self.manifest.get("excluded") is True

    @property
    def reps(self) -> int | None:
        """Repetitions the person counted, if entered."""
        reps = self.manifest.get("reps")
        return reps if isinstance(reps, int) and not isinstance(reps, bool) else None


def _partition(path: Path, key: str) -> str:
    for part in path.parts:
        if part.startswith(f"{key}="):
            return part[len(key) + 1 :]
    return ""


def _manifest(data_dir: Path, first: Path, session: str) -> dict[str, Any]:
    """``sessions/<session>.json`` (the recorder's place), else ``<session>.json`` beside."""
    for candidate in (data_dir / "sessions" / f"{session}.json", first.with_suffix(".json")):
        if candidate.is_file():
            if candidate.stat().st_size > MAX_MANIFEST_BYTES:
                raise ValueError(f"manifest {candidate.name} is over {MAX_MANIFEST_BYTES} bytes")
            data = json.loads(candidate.read_text())
            return data if isinstance(data, dict) else {}
    return {}


def _duration(manifest: dict[str, Any]) -> float | None:
    for key in ("duration", "duration_s", "seconds"):
        value = manifest.get(key)
        if isinstance(value, int | float):
            return float(value)
    start, stop = manifest.get("started_at"), manifest.get("stopped_at")
    if isinstance(start, int | float) and isinstance(stop, int | float):
        return max(0.0, float(stop) - float(start))
    return None


def read_session_info(data_dir: Path, session: str, paths: list[Path]) -> SessionInfo:
    """Describe one session from its manifest and its Parquet footers."""
    first = paths[0]
    device, date = _partition(first, "device"), _partition(first, "date")
    try:
        manifest = _manifest(data_dir, first, session)
        rows = sum(pq.read_metadata(p).num_rows for p in paths)
    except (OSError, ValueError) as exc:
        return SessionInfo(session, tuple(paths), device, date, "", "", 0, None, error=str(exc))
    manifest_rows = manifest.get("rows")
    return SessionInfo(
        session=session,
        paths=tuple(paths),
        device=str(manifest.get("device", device)),
        date=str(manifest.get("date", date)),
        label=str(manifest.get("label", "")),
        subject=str(manifest.get("subject") or ""),
        rows=int(manifest_rows) if isinstance(manifest_rows, int) else rows,
        duration=_duration(manifest),
        manifest=manifest,
    )


def find_sessions(data_dir: Path) -> list[SessionInfo]:
    """Every session under ``data_dir/recordings``, newest first (at most 5000).

    A long session has several parts ``<session>.parquet``, ``<session>-0001.parquet``...;
    they are grouped into one entry.
    """
    base = Path(data_dir) / "recordings"
    if not base.is_dir():
        return []
    inside = base.resolve()
    groups: dict[str, list[Path]] = {}
    for path in sorted(base.glob("date=*/device=*/*.parquet")):
        if path.name.startswith(".") or not _regular_file_inside(path, inside):
            continue  # hidden temporaries of an atomic write; links out of the data directory
        match = _PART.match(path.stem)
        groups.setdefault(match.group(1) if match else path.stem, []).append(path)
    newest = sorted(groups.items(), key=lambda item: _mtime(item[1][0]), reverse=True)
    found = [read_session_info(Path(data_dir), s, p) for s, p in newest[:MAX_SESSIONS]]
    return [s for s in found if s.manifest.get("deleting") is not True]  # a delete under way


def _regular_file_inside(path: Path, base: Path) -> bool:
    """A file (not a link) under ``base``: a download must not serve a file from elsewhere."""
    try:
        return path.is_file() and not path.is_symlink() and path.resolve().is_relative_to(base)
    except OSError:
        return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed since it was listed
        return 0.0


def read_session(info: SessionInfo) -> pa.Table:
    """All rows of a session (its parts concatenated)."""
    return pa.concat_tables([pq.read_table(p) for p in info.paths], promote_options="default")


def session_bytes(info: SessionInfo) -> bytes:
    """The session as one Parquet file (for download)."""
    if len(info.paths) == 1:
        return info.paths[0].read_bytes()
    sink = pa.BufferOutputStream()
    pq.write_table(read_session(info), sink)
    return bytes(sink.getvalue().to_pybytes())


def sessions_table(sessions: list[SessionInfo]) -> pd.DataFrame:
    """One row per session for display."""
    return pd.DataFrame(
        [
            {
                "session": s.session,
                "date": s.date,
                "device": s.device,
                "label": s.label,
                "subject": s.subject,
                "rows": s.rows,
                "duration_s": None if s.duration is None else round(s.duration, 1),
                "reps": s.reps,
                "excluded": s.excluded,
                "error": s.error or "",
            }
            for s in sessions
        ],
        columns=[
            "session", "date", "device", "label", "subject", "rows", "duration_s", "reps",
            "excluded", "error",
        ],
    )  # fmt: skip


def label_counts(sessions: list[SessionInfo]) -> pd.DataFrame:
    """Sessions, rows and seconds recorded per label."""
    table = sessions_table([s for s in sessions if s.error is None])
    if table.empty:
        return pd.DataFrame(columns=["label", "sessions", "rows", "seconds"])
    grouped = table.groupby("label").agg(
        sessions=("session", "count"), rows=("rows", "sum"), seconds=("duration_s", "sum")
    )
    return grouped.reset_index()


def _first_rows(path: Path, max_rows: int) -> pa.Table:
    """The first ``max_rows`` rows of a Parquet file, reading no more row groups than needed."""
    parquet = pq.ParquetFile(path)
    batches, rows = [], 0
    for batch in parquet.iter_batches(batch_size=max_rows):
        batches.append(batch)
        rows += batch.num_rows
        if rows >= max_rows:
            break
    return pa.Table.from_batches(batches, schema=parquet.schema_arrow).slice(0, max_rows)


def load_preview(path: Path, max_rows: int = 3000) -> pd.DataFrame:
    """The numeric sample columns of a part (first ``max_rows``) indexed by seconds."""
    frame = _first_rows(path, max_rows).to_pandas()
    time_col = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    numeric = frame.select_dtypes("number")
    if time_col is not None and not frame.empty:
        seconds = pd.to_numeric(frame[time_col], errors="coerce")
        if pd.api.types.is_datetime64_any_dtype(frame[time_col]):
            seconds = frame[time_col].astype("int64") / 1e9
        numeric = numeric.drop(columns=[time_col], errors="ignore")
        numeric.index = (seconds - seconds.iloc[0]).rename("seconds")
    skip = {"seq", "sample", "index", "rep", "row", "rate", "device_time", "receive_time"}
    return numeric[[c for c in numeric.columns if c not in skip][:MAX_PREVIEW_COLUMNS]]
