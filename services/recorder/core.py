"""The recorder's core: frames, predictions, start/stop commands, time limits. No MQTT.

The shell feeds it messages (:meth:`Recorder.frame`, :meth:`Recorder.prediction`,
:meth:`Recorder.start`, :meth:`Recorder.stop`), defers each message's
acknowledgement with :meth:`Recorder.defer_ack` and calls :meth:`Recorder.commit`
once per batch; the durable side (segments, group commit, recovery,
compaction) is :class:`services.recorder.store.SessionStore`.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from typing import Any

from imu_har.protocol.codec import decode_frame
from imu_har.protocol.commands import SessionEdit, StartRecording, StopRecording
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import Prediction
from services.recorder import storage
from services.recorder.edits import EditError, SessionEdits
from services.recorder.events import parse_event
from services.recorder.segments import WriteFn
from services.recorder.sessions import Session
from services.recorder.settings import RecorderConfig
from services.recorder.store import SessionStore

__all__ = ["CommandError", "Recorder", "RecorderConfig"]
logger = logging.getLogger(__name__)

MAX_TIME = 1e11  # year ~5138: beyond it a time cannot be a date partition


class CommandError(Exception):
    """A command that cannot be carried out; its text goes into the error reply."""


class Recorder(SessionStore):
    """All sessions of one data directory plus the prediction log."""

    def __init__(self, config: RecorderConfig, write: WriteFn = os.write) -> None:
        super().__init__(config, write)
        # device -> when last seen, least recently seen first (bounded: max_known_devices)
        self.known_devices: OrderedDict[str, float] = OrderedDict()
        self.edits = SessionEdits(self.data_dir, write, self.counts)
        self._edit_unfinished = False  # an edit failed half-way: finish it when the disk works

    def open(self) -> bool:
        """Open the store, then finish session edits a crash interrupted."""
        if not super().open():
            return False
        self._finish_edits()
        return True

    def _finish_edits(self) -> None:
        try:
            self.counts["edits_resumed"] += self.edits.resume()
            self._edit_unfinished = False
        except OSError as exc:
            self._edit_unfinished = True
            logger.error("cannot finish an interrupted session edit: %s", exc)

    # -- devices ------------------------------------------------------------------------
    def note_device(self, device: str, now: float) -> str | None:
        """Remember a device seen on the broker (its status or its predictions).

        Returns the device forgotten to make room (the least recently seen), if any.
        """
        known = self.known_devices
        if device in known:
            known.move_to_end(device)
        known[device] = now
        if len(known) <= self.config.max_known_devices:
            return None
        forgotten, _ = known.popitem(last=False)
        self.counts["known_devices_forgotten"] += 1
        return forgotten

    def forget_device(self, device: str) -> None:
        """A device whose retained status was cleared is no longer known."""
        self.known_devices.pop(device, None)

    def is_known(self, device: str) -> bool:
        """Whether ``device`` may be recorded without first seeing it on the broker."""
        config = self.config
        if device in self.by_device:
            return True
        if config.devices:
            return device in config.devices
        return not config.require_known_device or device in self.known_devices

    # -- data ---------------------------------------------------------------------------
    def frame(self, device: str, payload: bytes, qos: int = 1, now: float = 0.0) -> str:
        """Record a raw frame of ``device`` if it has an open session; say what happened."""
        session = self.by_device.get(device)
        if session is None:
            self.counts["unrecorded_frames"] += 1
            return "unrecorded"
        frame = decode_frame(payload)
        if frame.device != device:
            raise PayloadError("device_mismatch", f"payload device {frame.device!r} on its topic")
        if self._overloaded(qos):
            return "dropped"
        outcome = self._buffered(session.add(frame, payload), payload, "frames")
        if outcome == "recorded":
            self.counts["rows"] += frame.samples.shape[0]
        return outcome

    def prediction(self, payload: bytes, received_at: float, qos: int = 0) -> str:
        """Log one prediction JSON (validated); say what happened."""
        prediction = Prediction.from_payload(payload)
        for value in (prediction.window_start, prediction.window_end):
            if not (math.isfinite(value) and 0 <= value < MAX_TIME):
                raise PayloadError("bad_time", f"prediction time {value!r} is out of range")
        self.note_device(prediction.device, received_at)
        if self._overloaded(qos):
            return "dropped"
        added = self.predictions.add(prediction, payload, received_at)
        return self._buffered(added, payload, "predictions")

    def workout_event(
        self, dataset: str, device: str, payload: bytes, received_at: float, qos: int = 1
    ) -> str:
        """Log one rep (``dataset`` ``reps``) or set event of ``device``; say what happened."""
        event = parse_event(dataset, payload, device)
        if self._overloaded(qos):
            return "dropped"
        added = self.workouts.add(event, payload, received_at)
        return self._buffered(added, payload, f"{dataset}_logged")

    def _buffered(self, added: bool, payload: bytes, counter: str) -> str:
        """Count a message buffered (``added``) under ``counter``, or a duplicate."""
        if not added:
            self.counts["duplicates"] += 1
            return "duplicate"
        self._pending_bytes += len(payload)
        self.counts[counter] += 1
        return "recorded"

    def _overloaded(self, qos: int) -> bool:
        """Shed QoS 0 input while the disk fails and buffers are full (QoS 1 waits)."""
        if qos == 0 and self.error and self._pending_bytes > self.config.max_pending_bytes:
            self.counts["dropped_disk_error"] += 1
            return True
        return False

    # -- commands -----------------------------------------------------------------------
    def start(
        self, command: StartRecording, now: float, request_id: str | None = None
    ) -> dict[str, Any]:
        """Open a session; its header is durable before this returns.

        ``request_id`` (the MQTT v5 correlation data, hex) makes a repeated
        identical command idempotent: a start redelivered by the broker after a
        crash returns the session it opened instead of "already recording".
        """
        device = command.device
        request = _request(command, request_id)
        session = self.by_device.get(device)
        if request is not None and session is not None and session.meta.get("request") == request:
            self.counts["starts_repeated"] += 1
            return session.summary(now) | {"repeated": True}
        self.check_start(command)
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
            "request": request,
            "reps": command.reps,
        }
        session = Session(self.data_dir, meta)
        try:
            session.open(self.config.fsync, self.write)
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
        logger.info("recording %r as %r: session %s", device, command.label, session.id)
        return session.summary(now)

    def check_start(self, command: StartRecording, known: bool = True) -> None:
        """Raise :class:`CommandError` if ``command`` cannot start (``known``: device rule too)."""
        device, config = command.device, self.config
        if not self.ready or self.error:
            raise CommandError(f"storage unavailable: {self.error}")
        if len(self.sessions) >= config.max_sessions and device not in self.by_device:
            self.counts["refused_too_many_sessions"] += 1
            raise CommandError(
                f"too many sessions: {len(self.sessions)} open or being finalized "
                f"(--max-sessions {config.max_sessions})"
            )
        if config.devices and device not in config.devices:
            raise CommandError(f"unknown device {device!r}: not in --devices")
        if known and not self.is_known(device):
            raise CommandError(unknown_device(device))
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

    def edit(self, command: SessionEdit) -> dict[str, Any]:
        """Relabel, exclude, delete or set the reps of a finished session (:mod:`.edits`)."""
        session = self.sessions.get(command.session)
        if session is not None:
            state = "being finalized" if session.stopped is not None else "still recording"
            raise CommandError(f"session {command.session!r} is {state}: stop it first")
        if not self.ready:
            raise CommandError(f"storage unavailable: {self.error}")
        try:
            return self.edits.apply(command, self.config.labels)
        except EditError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:  # the intent stays: finished on a later tick or start
            self._edit_unfinished = True
            self.counts["write_errors"] += 1
            raise CommandError(f"cannot {command.action} {command.session!r}: {exc}") from exc

    # -- periodic work --------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Retry after errors, enforce time limits, finalize, rotate, finish failed edits."""
        if not self.storage_usable():
            return
        if self._edit_unfinished:
            self._finish_edits()
        for session in list(self.by_device.values()):
            if now - float(session.meta["started_at"]) >= float(session.meta["max_seconds"]):
                self._stop(session, now, "time_limit")
        self.maintain(now)

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
        keep = ("session", "device", "label", "subject", "started_at", "stopped_at", "rows")
        extra = ("stop_reason", "files", "excluded", "reps")
        limit = self.config.list_limit
        sessions, total = storage.read_manifests(self.data_dir, limit, (*keep, *extra))
        return {"sessions": sessions, "total": total}


def unknown_device(device: str) -> str:
    """The error text for a device the recorder has not seen."""
    return (
        f"unknown device {device!r}: the recorder has seen no status (retained by the "
        "gateway), prediction or frame of it; is it connected to a gateway?"
    )


def _request(command: StartRecording, request_id: str | None) -> dict[str, Any] | None:
    """What identifies one start request across redeliveries (None: not identifiable)."""
    if request_id is None:
        return None
    return {"id": request_id, "command": command.model_dump(mode="json")}
