"""The workout event log: every repetition and set ``har workout`` publishes, as Parquet.

Modelled on the prediction log (:mod:`services.recorder.predictions`) and made
durable the same way: each ``RepEvent`` (``<root>/<device>/rep``) and
``SetEvent`` (``<root>/<device>/set``), taken with QoS 1, goes into
``.segments/workouts-<id>.seg`` (received time + the JSON as published) and is
acknowledged only after the group commit has fsynced it. When the segment holds
``rotate_rows`` events or is ``rotate_seconds`` old, and on shutdown, it is
compacted into ``reps/date=YYYY-MM-DD/<id>.parquet`` and
``sets/date=YYYY-MM-DD/<id>.parquet`` (one part per UTC date of the event's
``end``) and removed. After a crash the newest segment is reopened, so
redelivered duplicates meet their originals and are dropped; compacting an
older one again writes the same parts again (the same names: nothing doubles).

A repetition is known by ``(device, set, rep, start, end)``, a set by
``(device, set, start, end)``: a redelivered message is the same event, while
the same numbers on another day or after the workout service restarted have
other times. Every field is bounded by the protocol (ids and exercise names
are at most 64 characters), so the keys are kept as they are.
"""

from __future__ import annotations

import logging
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pydantic_core

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.workout import RepEvent, SetEvent
from services.recorder import storage
from services.recorder.segment_log import SegmentLog
from services.recorder.segments import WriteFn, read_segment

logger = logging.getLogger(__name__)

REPS, SETS = "reps", "sets"  # the datasets under the data directory
KINDS = {b"R": REPS, b"S": SETS}  # segment record kind -> dataset
MAX_TIME = 1e11  # year ~5138: beyond it a time cannot be a date partition
_TIME = struct.Struct("<d")
WorkoutEvent = RepEvent | SetEvent
Key = tuple[str, str, int, int, float, float]

# Parquet columns of each dataset (docs/protocol.md, "Recordings"); received_at is ours.
COLUMNS: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    REPS: (
        ("device", pa.string()),
        ("exercise", pa.string()),
        ("set", pa.int32()),
        ("rep", pa.int32()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("form", pa.string()),
        ("confidence", pa.float64()),
        ("received_at", pa.float64()),
    ),
    SETS: (
        ("device", pa.string()),
        ("exercise", pa.string()),
        ("set", pa.int32()),
        ("reps", pa.int32()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("incorrect", pa.int32()),
        ("mean_rep_seconds", pa.float64()),
        ("received_at", pa.float64()),
    ),
}


def parse_event(dataset: str, payload: bytes, device: str) -> WorkoutEvent:
    """A rep (``dataset`` ``reps``) or set event of ``device`` (its topic's), validated.

    Raises :class:`PayloadError`: ``bad_json``, ``bad_time`` (an end no date can
    hold), ``device_mismatch``.
    """
    event: WorkoutEvent = (RepEvent if dataset == REPS else SetEvent).from_payload(payload)
    if not event.end < MAX_TIME:  # start <= end and both >= 0: checked by the message
        raise PayloadError("bad_time", f"event time {event.end!r} is out of range")
    if event.device != device:
        raise PayloadError("device_mismatch", f"payload device {event.device!r} on {device!r}")
    return event


def _key(dataset: str, values: dict[str, Any]) -> Key:
    rep = int(values["rep"]) if dataset == REPS else 0
    start, end = float(values["start"]), float(values["end"])
    return (dataset, values["device"], int(values["set"]), rep, start, end)


def _decode(payload: bytes) -> tuple[dict[str, Any], float]:
    """A logged event's fields and receive time (validated before logging, checksummed)."""
    (received_at,) = _TIME.unpack_from(payload)
    return pydantic_core.from_json(payload[_TIME.size :]), received_at


def events_to_table(dataset: str, rows: list[tuple[dict[str, Any], float]]) -> pa.Table:
    """Rows of ``(event fields, received_at)`` as the dataset's Arrow table."""
    columns = COLUMNS[dataset]
    data = {name: [values.get(name) for values, _ in rows] for name, _ in columns[:-1]}
    data["received_at"] = [received_at for _, received_at in rows]
    return pa.Table.from_pydict(data, schema=pa.schema([pa.field(n, t, False) for n, t in columns]))


class WorkoutLog(SegmentLog[Key]):
    """Group-committed segment of rep and set events with rotation into Parquet."""

    prefix = "workouts"

    def __init__(
        self,
        data_dir: Path,
        *,
        fsync: bool,
        write: WriteFn,
        rotate_rows: int,
        rotate_seconds: float,
    ) -> None:
        super().__init__(
            data_dir,
            fsync=fsync,
            write=write,
            rotate_rows=rotate_rows,
            rotate_seconds=rotate_seconds,
        )
        self.total: dict[str, int] = dict.fromkeys(KINDS.values(), 0)  # logged since start

    def recover(self) -> None:
        """Drop temporaries, compact leftover segments except the newest, which is reopened."""
        for dataset in KINDS.values():
            for tmp in (self.data_dir / dataset).rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        super().recover()

    def _record_key(self, kind: bytes, payload: bytes) -> Key | None:
        return _key(KINDS[kind], _decode(payload)[0]) if kind in KINDS else None

    def add(self, event: WorkoutEvent, payload: bytes, received_at: float) -> bool:
        """Buffer one event; False for a duplicate."""
        dataset = REPS if isinstance(event, RepEvent) else SETS
        kind = b"R" if dataset == REPS else b"S"
        record = _TIME.pack(received_at) + payload
        if not self._append(_key(dataset, event.__dict__), kind, record, received_at):
            return False
        self.total[dataset] += 1
        return True

    def _compact(self, path: Path) -> None:
        """One Parquet part per dataset and UTC date of the events' ends."""
        rows: dict[tuple[str, str], list[tuple[dict[str, Any], float]]] = defaultdict(list)
        seen: set[Key] = set()
        for kind, payload in read_segment(path, repair=False):
            dataset = KINDS.get(kind)
            if dataset is None:
                continue
            values, received_at = _decode(payload)
            key = _key(dataset, values)
            if key in seen:
                continue
            seen.add(key)
            date = storage.utc_date(float(values["end"]))
            rows[(dataset, date)].append((values, received_at))
        part = path.stem.removeprefix("workouts-")
        for (dataset, date), events in sorted(rows.items()):
            final = self.data_dir / dataset / f"date={date}" / f"{part}.parquet"
            storage.write_parquet_atomic(events_to_table(dataset, events), final, self._write)
