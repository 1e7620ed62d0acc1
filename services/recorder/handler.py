"""The recorder's runtime handler: MQTT messages -> :class:`Recorder`, replies, retained status.

Every message of a batch is handled with :func:`imu_har.runtime.handler.each`
and its acknowledgement deferred in ``after``, whatever its handling did: one
bad message or bug never leaves it or the rest of its batch unacknowledged
(issue 12.2: a command whose reply raised used to do that, the broker's
in-flight window filled, and the recorder got no more commands while it still
reported online, also after a restart). The batch is then group-committed
(:meth:`Recorder.commit`), which acknowledges it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from imu_har.protocol import topics
from imu_har.protocol.commands import (
    RecorderQuery,
    RecorderReply,
    StartRecording,
    StopRecording,
    parse_recorder_command,
)
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import MAX_JSON_BYTES, RecorderStatus
from imu_har.runtime.handler import each
from imu_har.runtime.inbox import Inbound
from imu_har.runtime.service import ServiceRuntime
from services.recorder.core import CommandError, Recorder
from services.recorder.events import REPS, SETS
from services.recorder.settings import RecorderSettings
from services.recorder.starts import StartGate
from services.recorder.subscriptions import EVENT_TOPIC, ImuSubscriptions

logger = logging.getLogger(__name__)


class RecorderHandler:
    """Runtime handler of ``har recorder`` (see the module docstring)."""

    def __init__(self, settings: RecorderSettings, runtime: ServiceRuntime, core: Recorder) -> None:
        self.settings = settings
        self.runtime = runtime
        self.root = settings.topic_root
        self.core = core
        self.core.open()
        self._cmd_topic = topics.RECORDER_CMD.format(self.root)
        self._reply_topic = topics.RECORDER_REPLY.format(self.root)
        self._status_topic = topics.RECORDER_STATUS.format(self.root)
        self._imu = topics.IMU.splitter(self.root)
        self._prediction = topics.PREDICTION.splitter(self.root)
        self._workout_events = [  # (dataset of the event log, topic splitter)
            (REPS, topics.REP.splitter(self.root)),
            (SETS, topics.SET.splitter(self.root)),
        ]
        self._last_status = 0.0
        self._last_error: str | None = None
        self.imu = ImuSubscriptions(runtime, self.root)
        self.imu.sync(set(self.core.by_device))  # recovered sessions: subscribed on connect
        self.starts = StartGate(
            self.core,
            self.imu,
            self._reply,
            settings.unknown_device_wait,
            settings.max_pending_starts,
        )

    def subscriptions(self) -> list[tuple[str, int]]:
        """Commands, device status, predictions, rep and set events, open sessions' frames."""
        subs = [(self._cmd_topic, 1), (topics.DEVICE_STATUS.subscription(self.root), 0)]
        if self.settings.record_predictions:
            subs.append((topics.PREDICTION.subscription(self.root), 1))
        if self.settings.record_workouts:
            subs += [(topics.REP.subscription(self.root), 1)]
            subs += [(topics.SET.subscription(self.root), 1)]
        return subs + self.imu.connect_topics()

    def handle_batch(self, messages: list[Inbound]) -> None:
        """Handle every message, defer every acknowledgement, then group-commit."""
        each(self.runtime, messages, self._handle_one, after=self._defer_ack)
        self.core.commit()
        self.starts.poll()
        self._check_error()

    def _defer_ack(self, message: Inbound) -> None:
        # QoS 0 messages have nothing to acknowledge: deferring their no-op would grow the
        # list of pending acks without bound while the disk fails (statuses, predictions).
        if message.qos:
            self.core.defer_ack(message.ack)

    def _handle_one(self, message: Inbound) -> None:
        topic = message.topic
        if topic == EVENT_TOPIC:  # a SUBACK/UNSUBACK, from paho's thread
            self.starts.event(message.payload)
        elif topic == self._cmd_topic:
            self._command(message)
        elif (device := self._imu(topic)) is not None:
            self._frame(topics.validate_device_id(device), message)
        elif (device := self._prediction(topic)) is not None:
            topics.validate_device_id(device)
            self.core.prediction(message.payload, message.received_at, message.qos)
        elif not self._workout_event(message):
            self._device_status(message)

    def _workout_event(self, message: Inbound) -> bool:
        """Log a rep or set event (True), or say it is none (False)."""
        for dataset, split in self._workout_events:
            device = split(message.topic)
            if device is None:
                continue
            if self.settings.record_workouts:  # else: a subscription kept by the broker's session
                device = topics.validate_device_id(device)
                self.core.workout_event(
                    dataset, device, message.payload, message.received_at, message.qos
                )
            return True
        return False

    def _frame(self, device: str, message: Inbound) -> None:
        result = self.core.frame(device, message.payload, message.qos, message.received_at)
        if result == "unrecorded" and not self.starts.evidence(device):
            self.imu.stray(device)  # in flight after a stop, or a leftover subscription

    def _device_status(self, message: Inbound) -> None:
        level = message.topic[len(self.root) + 1 :].split("/", 1)[0]
        if level.lower() in topics.RESERVED_NAMES:
            return  # our own <root>/recorder/status and friends
        values = topics.DEVICE_STATUS.parse(message.topic, self.root)
        if values is None:
            return
        device = values["device"]
        if not message.payload:  # retained status cleared: the device is gone
            self.core.forget_device(device)
            return
        if _status_device(message.payload) != device:
            raise PayloadError("bad_status", f"{message.topic!r}: not a status of {device!r}")
        forgotten = self.core.note_device(device, message.received_at)
        if forgotten is not None:
            limit = self.settings.max_known_devices
            self.runtime.reject(
                "too_many_devices",
                f"{limit} devices known: forgot {forgotten!r}, the least recently seen",
            )
        self.starts.evidence(device)

    def _command(self, message: Inbound) -> None:
        action = ""
        try:
            command = parse_recorder_command(message.payload)
            action = command.action
            now = time.time()
            if isinstance(command, StartRecording):
                self.starts.begin(message, command, now)  # replies once subscribed
                return
            if isinstance(command, RecorderQuery):
                data = self.core.status(now) if action == "status" else self.core.list_sessions()
            elif isinstance(command, StopRecording):
                data = self.core.stop(command, now)
            else:  # relabel, exclude, delete, set_reps of a finished session
                data = self.core.edit(command)
            reply = RecorderReply(ok=True, action=action, data=data)
        except PayloadError as exc:
            self.runtime.reject(exc.reason, f"command: {exc.args[0]}")
            reply = RecorderReply(ok=False, action=_guess_action(message.payload), error=str(exc))
        except CommandError as exc:
            self.runtime.counters.inc("command_errors")
            reply = RecorderReply(ok=False, action=action, error=str(exc))
        except Exception as exc:  # a bug: answer, then let each() count and log it
            reply = RecorderReply(ok=False, action=action, error=f"internal error: {exc!r}")
            self._reply(message, reply)
            raise
        self._reply(message, reply)

    def _reply(self, request: Inbound, reply: RecorderReply) -> None:
        """Answer a command; a started or stopped session shows in the retained status at once."""
        if reply.action in ("start", "stop"):
            self._publish_status(force=True)
        self.runtime.reply(request, reply.to_payload(), self._reply_topic)

    def tick(self, now: float) -> None:
        """Time limits, retries, finalizing; pending starts; the retained status when due."""
        self.core.tick(now)
        self.starts.poll()
        self._check_error()
        self._publish_status()

    def _check_error(self) -> None:
        if self.core.error != self._last_error:
            self._last_error = self.core.error
            if self.core.error:
                self.runtime.error(self.core.error)
            self._publish_status(force=True)

    def _publish_status(self, force: bool = False, state: str = "online") -> None:
        now = time.time()
        if not force and now - self._last_status < self.settings.status_interval:
            return
        self._last_status = now
        status = RecorderStatus.model_validate({"state": state} | self.core.status(now))
        self.runtime.publish(self._status_topic, status.to_payload(), qos=1, retain=True)

    def details(self) -> dict[str, Any]:
        """Open sessions, storage error and subscriptions for the service status."""
        status = self.core.status(time.time())
        return {
            "recording": [s["session"] for s in status["recording"]],
            "rows": {s["session"]: s["rows"] for s in status["recording"]},
            "error": status["error"],
            "data_dir": status["data_dir"],
            "imu_subscriptions": sorted(self.imu.devices),
            "known_devices": len(self.core.known_devices),
            "pending_starts": len(self.starts.pending),
        }

    def close(self) -> None:
        """Commit and acknowledge what is buffered; open sessions resume on the next start."""
        self.core.close()
        self._publish_status(force=True, state="offline")


def _status_device(payload: bytes) -> object:
    """The ``device`` field of a device status (``DeviceStatus``; other fields may evolve)."""
    if len(payload) > MAX_JSON_BYTES:
        return None
    try:
        status = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return status.get("device") if isinstance(status, dict) else None


def _guess_action(payload: bytes) -> str:
    try:
        action = json.loads(payload).get("action", "")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return ""
    return action[:16] if isinstance(action, str) else ""
