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
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pydantic_core

from imu_har.protocol.messages import Prediction
from services.recorder import storage
from services.recorder.schema import predictions_to_table
from services.recorder.segment_log import SegmentLog
from services.recorder.segments import WriteFn, read_segment

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


class PredictionLog(SegmentLog[bytes]):
    """Group-committed prediction segment with rotation into Parquet."""

    prefix = "predictions"

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
        super().__init__(
            data_dir,
            fsync=fsync,
            write=write,
            rotate_rows=rotate_rows,
            rotate_seconds=rotate_seconds,
        )
        self.rotate_bytes = rotate_bytes
        self.total = 0  # predictions logged since start

    def _record_key(self, kind: bytes, payload: bytes) -> bytes | None:
        return _key(_decode(payload)[0]) if kind == PREDICTION else None

    def add(self, prediction: Prediction, payload: bytes, received_at: float) -> bool:
        """Buffer one prediction; False for a duplicate."""
        record = _TIME.pack(received_at) + payload
        if not self._append(_key(prediction.__dict__), PREDICTION, record, received_at):
            return False
        self.total += 1
        return True

    def due(self, now: float) -> bool:
        """Whether the current segment should be rotated (rows, age or bytes)."""
        size = self.writer.size if self.writer is not None else 0
        return super().due(now) or (self.rows > 0 and size >= self.rotate_bytes)

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
