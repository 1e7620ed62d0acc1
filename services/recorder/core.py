"""The recorder's core: sessions, group commit, acknowledgements, recovery. No MQTT.

The shell feeds it messages (:meth:`Recorder.frame`, :meth:`Recorder.prediction`,
:meth:`Recorder.start`, :meth:`Recorder.stop`), defers each message's
acknowledgement with :meth:`Recorder.defer_ack` and calls :meth:`Recorder.commit`
once per batch: every dirty segment is written and fsynced, and only then are
the batch's messages acknowledged, in order. When the disk fails nothing is
acknowledged; the buffers are kept and retried on :meth:`Recorder.tick`, so the
broker redelivers whatever a crash in between would lose.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imu_har.codec import decode_frame
from imu_har.commands import StartRecording, StopRecording
from imu_har.errors import PayloadError
from imu_har.messages import Prediction
from services.recorder import storage
from services.recorder.predictions import PredictionLog
from services.recorder.segments import WriteFn
from services.recorder.sessions import Session, recover

logger = logging.getLogger(__name__)

MAX_TIME = 1e11  # year ~5138: beyond it a time cannot be a date partition


class CommandError(Exception):
    """A command that cannot be carried out; its text goes into the error reply."""


@dataclass
class RecorderConfig:
    """What the core needs from the settings."""

    data_dir: Path
    labels: tuple[str, ...] = ()  # empty: any valid label
    devices: tuple[str, ...] = ()  # empty: any device seen on the broker
    require_known_device: bool = True
    max_session_seconds: float = 4 * 3600.0
    rotate_rows: int = 1_000_000
    predictions_rotate_rows: int = 50_000
    predictions_rotate_seconds: float = 600.0
    fsync: bool = True
    write: WriteFn = os.write
    retry_seconds: float = 1.0
    max_pending_bytes: int = 64 * 1024 * 1024
    list_limit: int = 200


class Recorder:
    """All sessions of one data directory plus the prediction log."""

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.sessions: dict[str, Session] = {}  # open or stopping, by id
        self.by_device: dict[str, Session] = {}  # open (not stopped) by device
        self.known_devices: dict[str, float] = {}
        self.predictions = PredictionLog(
            self.data_dir,
            fsync=config.fsync,
            write=config.write,
            rotate_rows=config.predictions_rotate_rows,
            rotate_seconds=config.predictions_rotate_seconds,
        )
        self.counts: Counter[str] = Counter()
        self.error: str | None = None
        self.ready = False
        self._acks: list[Callable[[], None]] = []
        self._pending_bytes = 0
        self._last_attempt = 0.0

    # -- startup and recovery -------------------------------------------------------
    def open(self) -> bool:
        """Create the layout and recover unfinished segments; False (error set) if it fails."""
        self._last_attempt = time.monotonic()
        try:
            storage.ensure_dir(self.data_dir / storage.SEGMENTS)
            storage.clean_temporaries(self.data_dir)
            self._recover_sessions()
            self.predictions.recover()
        except (OSError, ValueError) as exc:
            self._fail(f"data directory {self.data_dir} unusable: {exc}")
            return False
        self.ready = True
        self.error = None
        return True

    def _recover_sessions(self) -> None:
        groups: dict[str, list[Path]] = {}
        for path in (self.data_dir / storage.SEGMENTS).glob("session-*.seg"):
            session_id = path.stem.removeprefix("session-").rsplit("-", 1)[0]
            groups.setdefault(session_id, []).append(path)
        for session_id, paths in sorted(groups.items()):
            if session_id in self.sessions:
                continue
            try:
                session = recover(self.data_dir, paths)
            except ValueError as exc:  # created just before a crash, never confirmed
                logger.warning("dropping unusable segment of %s: %s", session_id, exc)
                continue
            session.open(self.config.fsync, self.config.write)
            self.sessions[session.id] = session
            self.counts["recovered_sessions"] += 1
            if session.stopped is None:
                self.by_device[session.device] = session
                logger.info("resuming session %s of %s", session.id, session.device)
            else:
                self._finalize(session)

    # -- data ---------------------------------------------------------------------------
    def note_device(self, device: str, now: float) -> None:
        """Remember a device seen on the broker (raw frames or its status)."""
        self.known_devices[device] = now

    def frame(self, device: str, payload: bytes, qos: int = 1, now: float = 0.0) -> str:
        """Record a raw frame of ``device`` if it has an open session; say what happened."""
        self.note_device(device, now or time.time())
        session = self.by_device.get(device)
        if session is None:
            self.counts["unrecorded_frames"] += 1
            return "unrecorded"
        frame = decode_frame(payload)
        if frame.device != device:
            raise PayloadError("device_mismatch", f"payload device {frame.device!r} on its topic")
        if self._overloaded(qos):
            return "dropped"
        if not session.add(frame, payload):
            self.counts["duplicates"] += 1
            return "duplicate"
        self._pending_bytes += len(payload)
        self.counts["frames"] += 1
        self.counts["rows"] += frame.samples.shape[0]
        return "recorded"

    def prediction(self, payload: bytes, received_at: float, qos: int = 0) -> str:
        """Log one prediction JSON (validated); say what happened."""
        prediction = Prediction.from_payload(payload)
        for value in (prediction.window_start, prediction.window_end):
            if not (math.isfinite(value) and 0 <= value < MAX_TIME):
                raise PayloadError("bad_time", f"prediction time {value!r} is out of range")
        if self._overloaded(qos):
            return "dropped"
        if not self.predictions.add(prediction, payload, received_at):
            self.counts["duplicates"] += 1
            return "duplicate"
        self._pending_bytes += len(payload)
        self.counts["predictions"] += 1
        return "recorded"

    def _overloaded(self, qos: int) -> bool:
        """Shed QoS 0 input while the disk fails and buffers are full (QoS 1 waits)."""
        if qos == 0 and self.error and self._pending_bytes > self.config.max_pending_bytes:
            self.counts["dropped_disk_error"] += 1
            return True
        return False

    def defer_ack(self, ack: Callable[[], None]) -> None:
        """Acknowledge a handled message after the next successful commit."""
        self._acks.append(ack)

    def commit(self) -> bool:
        """Group commit: write + fsync every dirty segment, then acknowledge; False on error."""
        self._last_attempt = time.monotonic()
        if not self.ready:
            return False
        try:
            for session in list(self.sessions.values()):
                if session.writer is not None:
                    session.writer.commit()
            self.predictions.commit()
        except OSError as exc:
            self._fail(f"cannot write to {self.data_dir}: {exc}")
            return False
        self.counts["commits"] += 1
        acks, self._acks = self._acks, []
        for ack in acks:
            ack()
        self._pending_bytes = 0
        if self.error:
            logger.info("writing works again; recording resumes")
        self.error = None
        return True

    def _fail(self, text: str) -> None:
        if self.error != text:
            logger.error("%s", text)
        self.error = text
        self.counts["write_errors"] += 1

    # -- commands -----------------------------------------------------------------------
    def start(self, command: StartRecording, now: float) -> dict[str, Any]:
        """Open a session; its header is durable before this returns."""
        device = command.device
        self._check_start(command)
        limit = min(command.max_seconds or math.inf, self.config.max_session_seconds)
        meta: dict[str, Any] = {
            "session": storage.new_session_id(device, now),
            "device": device,
            "label": command.label,
            "subject": command.subject,
            "notes": command.notes,
            "started_at": now,
            "max_seconds": limit,
            "date": storage.utc_date(now),
            "part": 0,
            "rows_before": 0,
            "frames_before": 0,
            "files": [],
            "clock_offset": None,
            "channels": None,
        }
        session = Session(self.data_dir, meta)
        try:
            session.open(self.config.fsync, self.config.write)
            self.sessions[session.id] = session
            if not self.commit():
                raise OSError(self.error)
            storage.fsync_dir(session.path.parent)
        except OSError as exc:
            self.sessions.pop(session.id, None)
            session.close_writer()
            session.path.unlink(missing_ok=True)
            raise CommandError(f"cannot start recording: {exc}") from exc
        self.by_device[device] = session
        self.counts["sessions_started"] += 1
        logger.info("recording %s as %r: session %s", device, command.label, session.id)
        return session.summary(now)

    def _check_start(self, command: StartRecording) -> None:
        device, config = command.device, self.config
        if not self.ready or self.error:
            raise CommandError(f"storage unavailable: {self.error}")
        if config.devices and device not in config.devices:
            raise CommandError(f"unknown device {device!r}: not in --devices")
        if not config.devices and config.require_known_device and device not in self.known_devices:
            raise CommandError(f"unknown device {device!r}: no frames or status seen from it")
        if config.labels and command.label not in config.labels:
            raise CommandError(f"label {command.label!r} is not one of {list(config.labels)}")
        if device in self.by_device:
            active = self.by_device[device].id
            raise CommandError(f"device {device!r} is already recording (session {active})")

    def stop(self, command: StopRecording, now: float, reason: str = "command") -> dict[str, Any]:
        """Stop a session and finalize its Parquet files and manifest."""
        if command.session is not None:
            session = self.sessions.get(command.session)
            if session is None or session.stopped is not None:
                raise CommandError(f"no open session {command.session!r}")
        else:
            assert command.device is not None
            found = self.by_device.get(command.device)
            if found is None:
                raise CommandError(f"device {command.device!r} is not recording")
            session = found
        return self._stop(session, now, reason)

    def _stop(self, session: Session, now: float, reason: str) -> dict[str, Any]:
        session.mark_stopped(now, reason)
        del self.by_device[session.device]
        self.counts[f"stopped_{reason}"] += 1
        logger.info("session %s of %s stopped (%s)", session.id, session.device, reason)
        result = session.summary(now) | {"stop_reason": reason}
        if self.commit():
            result |= self._finalize(session)
        else:
            result |= {"finalized": False, "error": self.error}
        return result

    def _finalize(self, session: Session) -> dict[str, Any]:
        """Compact the last part, write the manifest, drop the segment."""
        try:
            meta = session.compact()
            manifest = session.manifest(meta)
            storage.write_json_atomic(manifest, storage.manifest_path(self.data_dir, session.id))
            session.close_writer()
            storage.remove_durably(session.path)
        except OSError as exc:
            self._fail(f"cannot finalize session {session.id}: {exc}")
            return {"finalized": False, "error": self.error}
        self.sessions.pop(session.id, None)
        self.counts["sessions_finished"] += 1
        return {"finalized": True, "rows": manifest["rows"], "files": manifest["files"]}

    def _rotate(self, session: Session) -> None:
        """Compact a long session's committed segment and continue in the next part."""
        try:
            meta = session.compact()
            successor = Session(self.data_dir, meta, keys=session.keys)
            successor.open(self.config.fsync, self.config.write)
            successor.writer.commit()  # type: ignore[union-attr]
        except OSError as exc:
            self._fail(f"cannot rotate session {session.id}: {exc}")
            return
        session.close_writer()
        storage.remove_durably(session.path)
        self.sessions[session.id] = successor
        if successor.device in self.by_device:
            self.by_device[successor.device] = successor
        self.counts["rotations"] += 1

    # -- periodic work --------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Retry after errors, enforce time limits, finalize, rotate."""
        if not self.ready:
            if time.monotonic() - self._last_attempt >= self.config.retry_seconds:
                self.open()
            return
        if self.error and time.monotonic() - self._last_attempt >= self.config.retry_seconds:
            self.commit()
        if self.error:
            return
        for session in list(self.by_device.values()):
            if now - float(session.meta["started_at"]) >= float(session.meta["max_seconds"]):
                self._stop(session, now, "time_limit")
        for session in list(self.sessions.values()):
            if session.stopped is not None and not self.error:
                self._finalize(session)
            elif self._rotation_due(session):
                self._rotate(session)
        if self.predictions.due(now) and not self.predictions.dirty:
            try:
                self.predictions.rotate()
            except OSError as exc:
                self._fail(f"cannot write predictions: {exc}")

    def _rotation_due(self, session: Session) -> bool:
        writer = session.writer
        return (
            not self.error
            and session.segment_rows >= self.config.rotate_rows
            and writer is not None
            and not writer.dirty
        )

    # -- queries ----------------------------------------------------------------------------
    def status(self, now: float) -> dict[str, Any]:
        """Open sessions with row counts, errors and totals (retained status and replies)."""
        return {
            "recording": [s.summary(now) for s in self.by_device.values()],
            "finalizing": [s.id for s in self.sessions.values() if s.stopped is not None],
            "error": self.error,
            "predictions": {"logged": self.predictions.total, "segment": self.predictions.rows},
            "counts": dict(self.counts),
            "data_dir": str(self.data_dir),
            "updated_at": now,
        }

    def list_sessions(self) -> dict[str, Any]:
        """Manifests of finished sessions, newest first (at most ``list_limit``)."""
        paths = sorted((self.data_dir / storage.SESSIONS).glob("*.json"), reverse=True)
        sessions = []
        for path in paths[: self.config.list_limit]:
            try:
                manifest = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                logger.warning("unreadable manifest %s: %s", path, exc)
                continue
            keep = ("session", "device", "label", "subject", "started_at", "stopped_at", "rows")
            sessions.append({k: manifest.get(k) for k in (*keep, "stop_reason", "files")})
        return {"sessions": sessions, "total": len(paths)}

    def close(self) -> None:
        """Commit what is buffered, compact the prediction log; open sessions stay resumable."""
        if self.commit():
            try:
                self.predictions.rotate()
            except OSError as exc:
                self._fail(f"cannot write predictions: {exc}")
        for session in self.sessions.values():
            session.close_writer()
        self.predictions.close()
