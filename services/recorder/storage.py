"""The data directory's layout and atomic file writes.

Layout under ``--data-dir``::

    recordings/date=YYYY-MM-DD/device=<device>/<session>.parquet   one row per sample
    predictions/date=YYYY-MM-DD/<part>.parquet                      one row per prediction
    sessions/<session>.json                                         manifest per session
    .segments/                                                      write-ahead segments

Every final file is written as a hidden temporary (``.<name>.tmp``, ignored by
Parquet dataset readers), fsynced, renamed into place and its directory
fsynced: a reader sees either no file or the whole file. Its bytes go through
the same ``write`` function as the segments, so a test's full disk
(``tests/support/recorder.py``) fails every write the recorder makes.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from services.recorder.segments import WriteFn

logger = logging.getLogger(__name__)

RECORDINGS = "recordings"
PREDICTIONS = "predictions"
SESSIONS = "sessions"
SEGMENTS = ".segments"


def utc_date(timestamp: float) -> str:
    """``YYYY-MM-DD`` of a Unix time, in UTC (the ``date=`` partition)."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def new_session_id(device: str, now: float) -> str:
    """A unique, path- and topic-safe session id: ``<UTC time>-<device>-<random>``."""
    safe_device = "".join(c if c.isalnum() or c in "_-" else "_" for c in device)[:32]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{stamp}-{safe_device}-{secrets.token_hex(3)}"


def part_name(session: str, part: int) -> str:
    """File name of part ``part`` of a session: the first is ``<session>.parquet``."""
    return f"{session}.parquet" if part == 0 else f"{session}-{part:04d}.parquet"


def recording_path(data_dir: Path, date: str, device: str, session: str, part: int) -> Path:
    """Where a session's Parquet part lives."""
    return data_dir / RECORDINGS / f"date={date}" / f"device={device}" / part_name(session, part)


def manifest_path(data_dir: Path, session: str) -> Path:
    """Where a session's manifest lives."""
    return data_dir / SESSIONS / f"{session}.json"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)
    fsync_dir(final.parent)


def _tmp_for(final: Path) -> Path:
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")


def ensure_dir(path: Path) -> None:
    """Create ``path`` and parents, fsyncing each directory entry it creates."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        fsync_dir(directory.parent)


class _Sink:
    """A binary file object for pyarrow whose bytes go to ``fd`` through ``write``."""

    closed = False

    def __init__(self, fd: int, write: WriteFn) -> None:
        self.fd, self._write, self.size = fd, write, 0

    def write(self, data: Any) -> int:
        data = bytes(data)
        written = 0
        while written < len(data):
            written += self._write(self.fd, data[written:])
        self.size += written
        return written

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self.size


def _write_atomic(final: Path, fill: Callable[[_Sink], object], write: WriteFn) -> None:
    """Create ``final`` atomically from ``fill(sink)`` (tmp, fsync, rename, fsync dir)."""
    ensure_dir(final.parent)
    tmp = _tmp_for(final)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            fill(_Sink(fd, write))
            os.fsync(fd)
        finally:
            os.close(fd)
        _publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(table: pa.Table, final: Path, write: WriteFn = os.write) -> None:
    """Write ``table`` to ``final`` atomically."""
    _write_atomic(final, lambda sink: pq.write_table(table, sink, compression="zstd"), write)


def rewrite_parquet_atomic(
    path: Path, change: Callable[[pa.Table], pa.Table], write: WriteFn = os.write
) -> int:
    """Replace the Parquet file ``path`` by ``change`` applied to each of its row groups.

    Streams one row group at a time (a part holds up to ``--rotate-rows`` rows: reading
    it whole would hold them all in memory) into a temporary renamed over ``path``:
    a reader sees the old file or the new one. Returns the rows written.
    """
    rows = 0

    def fill(sink: _Sink) -> None:
        nonlocal rows
        with (
            pq.ParquetFile(path) as source,
            pq.ParquetWriter(sink, source.schema_arrow, compression="zstd") as out,
        ):
            for index in range(source.num_row_groups):
                group = change(source.read_row_group(index))
                out.write_table(group)
                rows += group.num_rows

    _write_atomic(path, fill, write)
    return rows


def write_json_atomic(data: dict[str, Any], final: Path, write: WriteFn = os.write) -> None:
    """Write ``data`` as JSON to ``final`` atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    _write_atomic(final, lambda sink: sink.write(text.encode()), write)


def read_manifests(
    data_dir: Path, limit: int, keys: tuple[str, ...]
) -> tuple[list[dict[str, Any]], int]:
    """The ``keys`` of the newest ``limit`` session manifests, newest first, and how many there are.

    An unreadable manifest is logged and left out.
    """
    paths = sorted((data_dir / SESSIONS).glob("*.json"), reverse=True)
    found = []
    for path in paths[:limit]:
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            logger.warning("unreadable manifest %r: %s", str(path), exc)
            continue
        found.append({k: manifest.get(k) for k in keys})
    return found, len(paths)


def remove_durably(path: Path) -> None:
    """Delete a file and make the deletion durable."""
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


def clean_temporaries(data_dir: Path) -> int:
    """Remove leftover ``.*.tmp`` files of a crash during a write; return how many."""
    count = 0
    for sub in (RECORDINGS, PREDICTIONS, SESSIONS):
        root = data_dir / sub
        if root.is_dir():
            for tmp in root.rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                count += 1
    return count
