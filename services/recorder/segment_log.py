"""What the prediction log and the workout log share: one open segment and its rotation.

A log appends records to ``.segments/<prefix>-<stamp>-<id>.seg`` through a
group-committed :class:`SegmentWriter`, remembers the keys of the records in
the current segment (so a redelivered message is dropped), and when the
segment is due compacts it into Parquet (the subclass's :meth:`SegmentLog._compact`)
and removes it. On start the leftover segments are compacted except the
newest, which is reopened with its keys, so duplicates meet their originals.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Generic, TypeVar

from services.recorder import storage
from services.recorder.segments import SegmentWriter, WriteFn, read_segment

K = TypeVar("K")


class SegmentLog(Generic[K]):
    """Group-committed segment of keyed records with rotation into Parquet.

    A subclass names its segments (:attr:`prefix`), says which key a logged
    record has (:meth:`_record_key`, ``None`` for a kind it does not keep) and
    how a segment becomes Parquet parts (:meth:`_compact`).
    """

    prefix = ""

    def __init__(
        self,
        data_dir: Path,
        *,
        fsync: bool,
        write: WriteFn,
        rotate_rows: int,
        rotate_seconds: float,
    ) -> None:
        self.data_dir = data_dir
        self.fsync, self._write = fsync, write
        self.rotate_rows, self.rotate_seconds = rotate_rows, rotate_seconds
        self.writer: SegmentWriter | None = None
        self.keys: set[K] = set()
        self.rows = 0  # records in the current segment
        self.opened_at = 0.0

    @property
    def segments_dir(self) -> Path:
        return self.data_dir / storage.SEGMENTS

    def _record_key(self, kind: bytes, payload: bytes) -> K | None:
        """The key of a logged record of ``kind``; None for a kind this log does not keep."""
        raise NotImplementedError

    def _compact(self, path: Path) -> None:
        """Write the segment at ``path`` as Parquet parts."""
        raise NotImplementedError

    def recover(self) -> None:
        """Compact leftover segments except the newest, which is reopened."""
        paths = sorted(self.segments_dir.glob(f"{self.prefix}-*.seg"))
        for old in paths[:-1]:
            self._compact(old)
            storage.remove_durably(old)
        if paths:
            newest = paths[-1]
            for kind, payload in read_segment(newest, repair=True):
                key = self._record_key(kind, payload)
                if key is not None:
                    self.keys.add(key)
            self.rows = len(self.keys)
            self._open(newest)

    def _append(self, key: K, kind: bytes, record: bytes, received_at: float) -> bool:
        """Buffer one record unless its key is in the segment already (then False)."""
        if key in self.keys:
            return False
        if self.writer is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(received_at))
            self._open(self.segments_dir / f"{self.prefix}-{stamp}-{secrets.token_hex(4)}.seg")
        assert self.writer is not None
        self.writer.append(kind, record)
        self.keys.add(key)
        self.rows += 1
        return True

    def _open(self, path: Path) -> None:
        self.writer = SegmentWriter(path, fsync=self.fsync, write=self._write)
        self.opened_at = time.time()

    def commit(self) -> None:
        """Make buffered records durable (raises OSError; nothing lost)."""
        if self.writer is not None:
            self.writer.commit()

    @property
    def dirty(self) -> bool:
        return self.writer is not None and self.writer.dirty

    def due(self, now: float) -> bool:
        """Whether the current segment should be rotated (enough rows, or old enough)."""
        return self.rows > 0 and (
            self.rows >= self.rotate_rows or now - self.opened_at >= self.rotate_seconds
        )

    def rotate(self) -> None:
        """Compact the committed segment into Parquet parts and start a new one."""
        if self.writer is None or self.writer.dirty:
            return
        path = self.writer.path
        self._compact(path)
        self.writer.close()
        self.writer = None
        storage.remove_durably(path)
        self.keys.clear()
        self.rows = 0

    def close(self) -> None:
        """Close without compacting (the segment is recovered on the next start)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
