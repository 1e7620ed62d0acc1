"""The recorder's durable state: segments, group commit, deferred acks, recovery, compaction.

:class:`SessionStore` owns the open sessions' segment files and the prediction
log. Messages are buffered by the layer above (:mod:`services.recorder.core`),
which defers each message's acknowledgement with :meth:`SessionStore.defer_ack`;
:meth:`SessionStore.commit` then writes and fsyncs every dirty segment and only
after that acknowledges the batch's messages, in order. When the disk fails
nothing is acknowledged; the buffers are kept and retried, so the broker
redelivers whatever a crash in between would lose. Stopped sessions are
compacted into Parquet and a manifest; long ones rotate into parts. A failing
operation is one error state until it works again (:mod:`services.recorder.health`).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.recorder import storage
from services.recorder.events import WorkoutLog
from services.recorder.health import Problems
from services.recorder.predictions import PredictionLog
from services.recorder.segment_log import SegmentLog
from services.recorder.segments import WriteFn
from services.recorder.sessions import Session, recover
from services.recorder.settings import RecorderConfig

logger = logging.getLogger(__name__)

# Keys of the operations whose failure is an error state (see services.recorder.health).
OPEN, COMMIT, PREDICTIONS, WORKOUTS = "open", "commit", "predictions", "workouts"


class SessionStore:
    """Sessions of one data directory and the prediction log, made durable by group commit.

    ``write`` is how bytes reach the disk (``os.write``; the tests pass one that
    fails like a full disk).
    """

    def __init__(self, config: RecorderConfig, write: WriteFn = os.write) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.write = write
        self.sessions: dict[str, Session] = {}  # open or stopping, by id
        self.by_device: dict[str, Session] = {}  # open (not stopped) by device
        self.predictions = PredictionLog(
            self.data_dir,
            fsync=config.fsync,
            write=write,
            rotate_rows=config.predictions_rotate_rows,
            rotate_seconds=config.predictions_rotate_seconds,
            rotate_bytes=config.predictions_rotate_bytes,
        )
        # rep and set events (har workout): rotated like the prediction log, far fewer rows
        self.workouts = WorkoutLog(
            self.data_dir,
            fsync=config.fsync,
            write=write,
            rotate_rows=config.predictions_rotate_rows,
            rotate_seconds=config.predictions_rotate_seconds,
        )
        self.counts: Counter[str] = Counter()
        self.problems = Problems()
        self.ready = False
        self._acks: list[Callable[[], None]] = []
        self._pending_bytes = 0
        self._last_retry = 0.0

    @property
    def error(self) -> str | None:
        """The current storage error (the oldest failing operation's), or None."""
        return self.problems.error

    # -- startup and recovery -------------------------------------------------------
    def open(self) -> bool:
        """Create the layout and recover unfinished segments; False (error set) if it fails."""
        try:
            storage.ensure_dir(self.data_dir / storage.SEGMENTS)
            storage.clean_temporaries(self.data_dir)
            self._recover_sessions()
            self.predictions.recover()
            self.workouts.recover()
        except (OSError, ValueError) as exc:
            self._fail(OPEN, f"data directory {self.data_dir} unusable: {exc}")
            return False
        self.ready = True
        self.problems.clear(OPEN)
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
                session = recover(self.data_dir, paths, self.write)
            except ValueError as exc:  # created just before a crash, never confirmed
                logger.warning("dropping unusable segment of %r: %s", session_id, exc)
                continue
            session.open(self.config.fsync, self.write)
            self.sessions[session.id] = session
            self.counts["recovered_sessions"] += 1
            if session.stopped is None:
                self.by_device[session.device] = session
                logger.info("resuming session %s of %r", session.id, session.device)
            else:
                self._finalize(session)

    # -- group commit ---------------------------------------------------------------------
    def defer_ack(self, ack: Callable[[], None]) -> None:
        """Acknowledge a handled message after the next successful commit."""
        self._acks.append(ack)

    def commit(self) -> bool:
        """Group commit: write + fsync every dirty segment, then acknowledge; False on error."""
        if not self.ready:
            return False
        try:
            for session in list(self.sessions.values()):
                if session.writer is not None:
                    session.writer.commit()
            self.predictions.commit()
            self.workouts.commit()
        except OSError as exc:
            self._fail(COMMIT, f"cannot write to {self.data_dir}: {exc}")
            return False
        self.counts["commits"] += 1
        acks, self._acks = self._acks, []
        for ack in acks:
            ack()
        self._pending_bytes = 0
        self.problems.clear(COMMIT)
        return True

    def _fail(self, key: str, text: str) -> None:
        """``key`` failed: an error state until it works again (logged once, then rarely)."""
        if self.problems.fail(key, text):
            self._last_retry = time.monotonic()
        self.counts["write_errors"] += 1

    # -- ending sessions --------------------------------------------------------------------
    def _stop(self, session: Session, now: float, reason: str) -> dict[str, Any]:
        session.mark_stopped(now, reason)
        del self.by_device[session.device]
        self.counts[f"stopped_{reason}"] += 1
        logger.info("session %s of %r stopped (%s)", session.id, session.device, reason)
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
        except OSError as exc:  # it resumes on the next start; stop it then (nothing to retry)
            logger.error("cannot remove the segment of failed session %s: %s", session_id, exc)
            self.counts["write_errors"] += 1
        self.counts["sessions_discarded"] += 1
        logger.info("session %s of %r discarded", session_id, session.device)

    def _finalize(self, session: Session) -> dict[str, Any]:
        """Compact the last part, write the manifest, drop the segment."""
        key = f"finalize {session.id}"
        try:
            meta = session.compact(self.write)
            manifest = session.manifest(meta)
            path = storage.manifest_path(self.data_dir, session.id)
            storage.write_json_atomic(manifest, path, self.write)
            session.close_writer()
            storage.remove_durably(session.path)
        except OSError as exc:
            self._fail(key, f"cannot finalize session {session.id}: {exc}")
            return {"finalized": False, "error": self.error}
        self.problems.clear(key)
        self.sessions.pop(session.id, None)
        self.counts["sessions_finished"] += 1
        return {"finalized": True, "rows": manifest["rows"], "files": manifest["files"]}

    def _rotate(self, session: Session) -> None:
        """Compact a long session's committed segment and continue in the next part."""
        key = f"rotate {session.id}"
        successor: Session | None = None
        try:
            meta = session.compact(self.write)
            successor = Session(self.data_dir, meta, older_keys=session.keys)
            successor.open(self.config.fsync, self.write)
            successor.writer.commit()  # type: ignore[union-attr]
        except OSError as exc:
            if successor is not None:
                successor.close_writer()
            self._fail(key, f"cannot rotate session {session.id}: {exc}")
            return
        self.problems.clear(key)
        session.close_writer()
        storage.remove_durably(session.path)
        self.sessions[session.id] = successor
        if successor.device in self.by_device:
            self.by_device[successor.device] = successor
        self.counts["rotations"] += 1

    # -- periodic work --------------------------------------------------------------------
    def storage_usable(self) -> bool:
        """Whether periodic work may run now (it retries whatever is failing).

        While something fails, only once every ``retry_seconds``: that round
        retries a failed open or commit here, and the caller's work retries the
        rest (finalize, rotate, the prediction log).
        """
        if self.problems or not self.ready:
            now = time.monotonic()
            if now - self._last_retry < self.config.retry_seconds:
                return False
            self._last_retry = now
        if not self.ready:
            self.open()
            return False
        if COMMIT in self.problems:
            self.commit()
        return COMMIT not in self.problems

    def maintain(self, now: float) -> None:
        """Finalize stopped sessions, rotate long ones, turn the prediction log into parts."""
        for session in list(self.sessions.values()):
            if session.stopped is not None:
                self._finalize(session)
            elif self._rotation_due(session):
                self._rotate(session)
        if self.predictions.due(now) and not self.predictions.dirty:
            self._rotate_predictions()
        if self.workouts.due(now) and not self.workouts.dirty:
            self._rotate_workouts()

    def _rotate_predictions(self) -> None:
        self._rotate_log(self.predictions, PREDICTIONS, "predictions")

    def _rotate_workouts(self) -> None:
        self._rotate_log(self.workouts, WORKOUTS, "rep and set events")

    def _rotate_log(self, log: SegmentLog[Any], problem: str, what: str) -> None:
        """Compact ``log``'s segment; a write error is the ``problem`` until one succeeds."""
        try:
            log.rotate()
        except OSError as exc:
            self._fail(problem, f"cannot write {what}: {exc}")
            return
        self.problems.clear(problem)

    def _rotation_due(self, session: Session) -> bool:
        writer = session.writer
        return (
            COMMIT not in self.problems
            and session.segment_rows >= self.config.rotate_rows
            and writer is not None
            and not writer.dirty
        )

    def close(self) -> None:
        """Commit what is buffered, compact the prediction log; open sessions stay resumable."""
        if self.commit():
            self._rotate_predictions()
            self._rotate_workouts()
        for session in self.sessions.values():
            session.close_writer()
        self.predictions.close()
        self.workouts.close()
