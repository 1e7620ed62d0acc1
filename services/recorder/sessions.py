"""One recording session: its segment (write-ahead log), dedup keys and Parquet parts.

A session's frames go, as received, into ``.segments/session-<id>-<part>.seg``
after a header record with the session's metadata; a stop record ends it.
Compaction decodes the segment, drops duplicates (same ``seq`` and
``receive_time``: QoS 1 redelivery after a crash), orders frames by
``(receive_time, seq)`` and writes the part's Parquet file atomically. It is a
pure function of the segment, so repeating it after a crash is harmless.

Duplicates are recognized by the keys of the current part and the one before
it: a QoS 1 redelivery repeats only what was not acknowledged, and a part is
rotated only once all of it is committed and acknowledged. Keeping the keys of
every part would grow with the session (a 4-hour session of a 1,000-frame/s
publisher: 14 million keys).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from imu_har.protocol.codec import Frame, decode_frame
from imu_har.protocol.errors import PayloadError
from imu_har.windowing.clock import DeviceClock
from services.recorder import storage
from services.recorder.schema import SessionLabels, frames_to_table
from services.recorder.segments import SegmentWriter, WriteFn, read_segment

FrameKey = tuple[int, float]

logger = logging.getLogger(__name__)

HEADER, FRAME, STOP = b"H", b"F", b"S"


def segment_path(data_dir: Path, session: str, part: int) -> Path:
    """Segment file of one part of a session."""
    return data_dir / storage.SEGMENTS / f"session-{session}-{part:04d}.seg"


@dataclass
class Session:
    """State of one session; ``meta`` is what its header record and manifest carry."""

    data_dir: Path
    meta: dict[str, Any]
    writer: SegmentWriter | None = None
    keys: set[FrameKey] = field(default_factory=set)  # frames of this part
    older_keys: Set[FrameKey] = frozenset()  # frames of the part before
    segment_rows: int = 0
    segment_frames: int = 0
    stopped: dict[str, Any] | None = None  # {"stopped_at", "reason"} once stopped

    # -- identity -----------------------------------------------------------------
    @property
    def id(self) -> str:
        return str(self.meta["session"])

    @property
    def device(self) -> str:
        return str(self.meta["device"])

    @property
    def part(self) -> int:
        return int(self.meta["part"])

    @property
    def rows(self) -> int:
        return int(self.meta["rows_before"]) + self.segment_rows

    @property
    def frames(self) -> int:
        return int(self.meta["frames_before"]) + self.segment_frames

    @property
    def path(self) -> Path:
        return segment_path(self.data_dir, self.id, self.part)

    # -- writing ------------------------------------------------------------------
    def open(self, fsync: bool, write: WriteFn) -> None:
        """Open (or create, writing the header) this part's segment."""
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self.writer = SegmentWriter(self.path, fsync=fsync, write=write)
        if fresh:
            self.writer.append(HEADER, json.dumps(self.meta).encode())

    def add(self, frame: Frame, payload: bytes) -> bool:
        """Buffer a frame; False for a duplicate. Raises PayloadError if it does not fit."""
        key = (frame.seq, frame.receive_time)
        if key in self.keys or key in self.older_keys:
            return False
        self._check_layout(frame)
        assert self.writer is not None
        self.writer.append(FRAME, payload)
        self.keys.add(key)
        self.segment_rows += frame.samples.shape[0]
        self.segment_frames += 1
        return True

    def add_decoded(self, payload: bytes) -> None:
        """Count a frame read back from the segment (recovery)."""
        frame = decode_frame(payload)
        key = (frame.seq, frame.receive_time)
        if key not in self.keys and key not in self.older_keys:
            self._check_layout(frame)
            self.keys.add(key)
            self.segment_rows += frame.samples.shape[0]
            self.segment_frames += 1

    def _check_layout(self, frame: Frame) -> None:
        if self.meta.get("channels") is None:
            self.meta.update(
                channels=list(frame.channels), units=list(frame.units), rate=frame.rate
            )
        elif list(frame.channels) != self.meta["channels"]:
            raise PayloadError(
                "channel_mismatch",
                f"frame channels {list(frame.channels)} differ from the session's",
            )

    def mark_stopped(self, now: float, reason: str) -> None:
        """Buffer the stop record (durable with the next commit)."""
        self.stopped = {"stopped_at": now, "reason": reason}
        assert self.writer is not None
        self.writer.append(STOP, json.dumps(self.stopped).encode())

    def close_writer(self) -> None:
        """Close the segment file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # -- compaction ---------------------------------------------------------------
    def compact(self, write: WriteFn) -> dict[str, Any]:
        """Write this part's Parquet file from its segment; return the next part's meta."""
        records = read_segment(self.path, repair=False)
        frames = _unique_frames(payload for kind, payload in records if kind == FRAME)
        clock = DeviceClock()
        clock.offset = self.meta.get("clock_offset")
        labels = SessionLabels(self.id, self.device, self.meta["label"], self.meta["subject"])
        meta = dict(self.meta)
        rel_files = list(meta["files"])
        if frames:
            channels = self.meta["channels"]
            table = frames_to_table(frames, labels, clock, channels)
            final = storage.recording_path(
                self.data_dir, meta["date"], self.device, self.id, self.part
            )
            storage.write_parquet_atomic(table, final, write)
            rel = str(final.relative_to(self.data_dir))
            if rel not in rel_files:
                rel_files.append(rel)
        rows = sum(f.samples.shape[0] for f in frames)
        meta.update(
            part=self.part + 1,
            rows_before=int(meta["rows_before"]) + rows,
            frames_before=int(meta["frames_before"]) + len(frames),
            files=rel_files,
            clock_offset=clock.offset,
        )
        return meta

    def manifest(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The session manifest written next to the data when it ends."""
        assert self.stopped is not None
        return {
            "session": self.id,
            "device": self.device,
            "label": meta["label"],
            "subject": meta["subject"],
            "notes": meta["notes"],
            "started_at": meta["started_at"],
            "stopped_at": self.stopped["stopped_at"],
            "stop_reason": self.stopped["reason"],
            "max_seconds": meta["max_seconds"],
            "rows": meta["rows_before"],
            "frames": meta["frames_before"],
            "channels": meta.get("channels") or [],
            "units": meta.get("units") or [],
            "rate": meta.get("rate"),
            "date": meta["date"],
            "files": meta["files"],
            "format": 1,
            "reps": meta.get("reps"),  # counted by the person (sessions of older versions: none)
            "excluded": False,
        }

    def summary(self, now: float) -> dict[str, Any]:
        """What status replies show about an open session."""
        return {
            "session": self.id,
            "device": self.device,
            "label": self.meta["label"],
            "subject": self.meta["subject"],
            "started_at": self.meta["started_at"],
            "seconds": round(now - float(self.meta["started_at"]), 3),
            "max_seconds": self.meta["max_seconds"],
            "rows": self.rows,
            "frames": self.frames,
            "stopping": self.stopped is not None,
        }


def _unique_frames(payloads: Iterable[bytes]) -> list[Frame]:
    """Decode, drop repeated ``(seq, receive_time)``, order by ``(receive_time, seq)``."""
    seen: set[FrameKey] = set()
    frames = []
    for payload in payloads:
        frame = decode_frame(payload)
        key = (frame.seq, frame.receive_time)
        if key not in seen:
            seen.add(key)
            frames.append(frame)
    frames.sort(key=lambda f: (f.receive_time, f.seq))
    return frames


def recover(data_dir: Path, paths: list[Path], write: WriteFn = os.write) -> Session:
    """Rebuild a session from its segment files (all parts, oldest first).

    Parts before the last are compacted again (idempotent) and removed; the
    last one becomes the session's live segment, its torn tail cut, and the
    part before it (its Parquet file) gives the older keys.
    """
    paths = [p for p in sorted(paths) if _has_records(p)]
    if not paths:
        raise ValueError("the session's segments are empty")
    for old in paths[:-1]:
        session = _load(data_dir, old)
        session.compact(write)
        storage.remove_durably(old)
    session = _load(data_dir, paths[-1])
    if session.meta["files"]:
        table = pq.read_table(
            data_dir / session.meta["files"][-1], columns=["seq", "sample", "receive_time"]
        )
        first = table.filter(_first_samples(table))
        session.older_keys = frozenset(
            zip(first["seq"].to_pylist(), first["receive_time"].to_pylist(), strict=True)
        )
    return session


def _has_records(path: Path) -> bool:
    """False (and the file removed) for a segment created just before a crash."""
    if read_segment(path, repair=True):
        return True
    storage.remove_durably(path)
    return False


def _first_samples(table: Any) -> Any:
    return pc.equal(table["sample"], 0)


def _load(data_dir: Path, path: Path) -> Session:
    records = read_segment(path, repair=True)
    if not records or records[0][0] != HEADER:
        raise ValueError(f"{path} has no session header")
    session = Session(data_dir, json.loads(records[0][1]))
    for kind, payload in records[1:]:
        if kind == FRAME:
            try:
                session.add_decoded(payload)
            except PayloadError as exc:  # cannot happen for frames we validated
                logger.warning("skipping a bad frame in %s: %s", path, exc)
        elif kind == STOP:
            session.stopped = json.loads(payload)
    return session
