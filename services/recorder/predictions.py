"""The continuous prediction log: a segment rotated into dated Parquet parts.

Every prediction goes into ``.segments/predictions-<id>.seg`` (received time +
the JSON as published). When the segment holds ``rotate_rows`` predictions or
is ``rotate_seconds`` old, and on shutdown, it is compacted into
``predictions/date=YYYY-MM-DD/<id>.parquet`` (one part per UTC date of
``window_end``) and removed; a segment of ``rotate_bytes`` is rotated too
(a prediction may be 256 KiB, and compaction reads the segment whole). After a
crash the newest segment is reopened, so redelivered duplicates meet their
originals and are dropped.

A prediction is known by ``(device, window_seq, window_end, model_version)``;
the log keeps a 16-byte digest of it per prediction of the segment, since
``model_version`` comes from the publisher and may be 256 KiB long.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import struct
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pydantic_core

from imu_har.protocol.messages import Prediction
from services.recorder import storage
from services.recorder.schema import predictions_to_table
from services.recorder.segments import SegmentWriter, WriteFn, read_segment

logger = logging.getLogger(__name__)

PREDICTION = b"P"
COMPACT_CHUNK = 2_000  # predictions decoded at a time when compacting
_TIME = struct.Struct("<d")
_FIELDS = frozenset(Prediction.model_fields)


def _key(values: dict[str, Any]) -> bytes:
    """The digest of what identifies a prediction (fixed size, whatever the strings)."""
    text = "\0".join(
        (
            values["device"],
            str(int(values["window_seq"])),
            repr(float(values["window_end"])),
            values["model_version"],
        )
    )
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _decode(payload: bytes) -> tuple[dict[str, Any], float]:
    """A logged prediction's fields and receive time.

    Records were validated as :class:`Prediction` before they were logged and
    are checksummed in the segment, so plain JSON parsing is enough (half the
    time of validating again); a prediction that left out fields with
    defaults goes through the model to get them.
    """
    (received_at,) = _TIME.unpack_from(payload)
    values = pydantic_core.from_json(payload[_TIME.size :])
    if values.keys() != _FIELDS:
        values = Prediction.model_validate(values).model_dump()
    return values, received_at


class PredictionLog:
    """Group-committed prediction segment with rotation into Parquet."""

    def __init__(
        self,
        data_dir: Path,
        *,
        fsync: bool,
        write: WriteFn,
        rotate_rows: int,
        rotate_seconds: float,
        rotate_bytes: int,
    ) -> None:
        self.data_dir = data_dir
        self.fsync, self._write = fsync, write
        self.rotate_rows, self.rotate_seconds = rotate_rows, rotate_seconds
        self.rotate_bytes = rotate_bytes
        self.writer: SegmentWriter | None = None
        self.keys: set[bytes] = set()
        self.rows = 0  # predictions in the current segment
        self.total = 0  # predictions logged since start
        self.opened_at = 0.0

    @property
    def segments_dir(self) -> Path:
        return self.data_dir / storage.SEGMENTS

    def recover(self) -> None:
        """Compact leftover segments except the newest, which is reopened."""
        paths = sorted(self.segments_dir.glob("predictions-*.seg"))
        for old in paths[:-1]:
            self._compact(old)
            storage.remove_durably(old)
        if paths:
            newest = paths[-1]
            for kind, payload in read_segment(newest, repair=True):
                if kind == PREDICTION:
                    self.keys.add(_key(_decode(payload)[0]))
            self.rows = len(self.keys)
            self._open(newest)

    def add(self, prediction: Prediction, payload: bytes, received_at: float) -> bool:
        """Buffer one prediction; False for a duplicate."""
        key = _key(prediction.__dict__)
        if key in self.keys:
            return False
        if self.writer is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(received_at))
            self._open(self.segments_dir / f"predictions-{stamp}-{secrets.token_hex(4)}.seg")
        assert self.writer is not None
        self.writer.append(PREDICTION, _TIME.pack(received_at) + payload)
        self.keys.add(key)
        self.rows += 1
        self.total += 1
        return True

    def _open(self, path: Path) -> None:
        self.writer = SegmentWriter(path, fsync=self.fsync, write=self._write)
        self.opened_at = time.time()

    def commit(self) -> None:
        """Make buffered predictions durable (raises OSError; nothing lost)."""
        if self.writer is not None:
            self.writer.commit()

    @property
    def dirty(self) -> bool:
        return self.writer is not None and self.writer.dirty

    def due(self, now: float) -> bool:
        """Whether the current segment should be rotated."""
        if self.rows == 0:
            return False
        size = self.writer.size if self.writer is not None else 0
        return (
            self.rows >= self.rotate_rows
            or now - self.opened_at >= self.rotate_seconds
            or size >= self.rotate_bytes
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

    def _compact(self, path: Path) -> None:
        """Write the segment's predictions as one Parquet part per date, converted in chunks.

        Decoded predictions are turned into Arrow tables every
        :data:`COMPACT_CHUNK` rows, so memory holds compact columns rather than
        tens of thousands of dicts.
        """
        rows: dict[str, list[tuple[dict[str, Any], float]]] = defaultdict(list)
        chunks: dict[str, list[pa.Table]] = defaultdict(list)
        seen: set[bytes] = set()
        for kind, payload in read_segment(path, repair=False):
            if kind != PREDICTION:
                continue
            values, received_at = _decode(payload)
            key = _key(values)
            if key in seen:
                continue
            seen.add(key)
            date = storage.utc_date(values["window_end"])
            pending = rows[date]
            pending.append((values, received_at))
            if len(pending) >= COMPACT_CHUNK:
                chunks[date].append(predictions_to_table(pending))
                pending.clear()
        part = path.stem.removeprefix("predictions-")
        for date in sorted(rows.keys() | chunks.keys()):
            tables = chunks[date] + ([predictions_to_table(rows[date])] if rows[date] else [])
            final = self.data_dir / storage.PREDICTIONS / f"date={date}" / f"{part}.parquet"
            storage.write_parquet_atomic(pa.concat_tables(tables), final, self._write)

    def close(self) -> None:
        """Close without compacting (the segment is recovered on the next start)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
