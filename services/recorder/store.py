"""The recorder's durable state: segments, group commit, deferred acks, recovery, compaction.

:class:`SessionStore` owns the open sessions' segment files and the prediction
log. Messages are buffered by the layer above (:mod:`services.recorder.core`),
which defers each message's acknowledgement with :meth:`SessionStore.defer_ack`;
:meth:`SessionStore.commit` then writes and fsyncs every dirty segment and only
after that acknowledges the batch's messages, in order. When the disk fails
nothing is acknowledged; the buffers are kept and retried, so the broker
redelivers whatever a crash in between would lose. Stopped sessions are
compacted into Parquet and a manifest; long ones rotate into parts.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.recorder import storage
from services.recorder.predictions import PredictionLog
from services.recorder.segments import WriteFn
from services.recorder.sessions import Session, recover

logger = logging.getLogger(__name__)


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


class SessionStore:
    """Sessions of one data directory and the prediction log, made durable by group commit."""

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.sessions: dict[str, Session] = {}  # open or stopping, by id
        self.by_device: dict[str, Session] = {}  # open (not stopped) by device
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

    # -- group commit ---------------------------------------------------------------------
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

    # -- ending sessions --------------------------------------------------------------------
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

    def discard(self, session_id: str) -> None:
        """Forget an open session whose start failed: its segment is deleted, nothing remains."""
        session = self.sessions.get(session_id)
        if session is None or session.stopped is not None:
            return
        self.sessions.pop(session_id)
        if self.by_device.get(session.device) is session:
            del self.by_device[session.device]
        session.close_writer()
        try:
            storage.remove_durably(session.path)
        except OSError as exc:  # it resumes on the next start; stop it then
            self._fail(f"cannot remove the segment of failed session {session_id}: {exc}")
        self.counts["sessions_discarded"] += 1
        logger.info("session %s of %s discarded", session_id, session.device)

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
    def storage_usable(self) -> bool:
        """Retry a failed open or commit when due; whether storage works now."""
        if not self.ready:
            if time.monotonic() - self._last_attempt >= self.config.retry_seconds:
                self.open()
            return False
        if self.error and time.monotonic() - self._last_attempt >= self.config.retry_seconds:
            self.commit()
        return self.error is None

    def maintain(self, now: float) -> None:
        """Finalize stopped sessions, rotate long ones, turn the prediction log into parts."""
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
