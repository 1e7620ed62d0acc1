"""``har recorder``: labelled Parquet recordings by command, and every prediction.

Subscribes with QoS 1 on a persistent MQTT v5 session (fixed client id,
``clean_start=False``, session expiry) and acknowledges each message only after
it is fsynced to a segment (see :mod:`services.recorder.store`), so neither a
``kill -9`` nor a broker restart loses a frame published with QoS 1. Raw frames
are subscribed per device, only while it is recorded
(:mod:`services.recorder.subscriptions`); a start is answered once that
subscription is granted (:mod:`services.recorder.starts`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from imu_har.protocol import topics
from imu_har.protocol.commands import (
    RecorderQuery,
    RecorderReply,
    StartRecording,
    parse_recorder_command,
    validate_name,
)
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import MAX_JSON_BYTES, RecorderStatus
from imu_har.runtime.service import Inbound, ServiceRuntime
from imu_har.runtime.settings import MqttSettings, service_settings
from services.recorder.core import CommandError, Recorder, RecorderConfig
from services.recorder.starts import StartGate
from services.recorder.subscriptions import EVENT_TOPIC, ImuSubscriptions

logger = logging.getLogger(__name__)


class RecorderSettings(MqttSettings):
    """Settings of ``har recorder``."""

    data_dir: Path = Field(default=Path("data"), description="Where recordings are written")
    labels: list[str] = Field(default=[], description="Allowed labels (empty: any valid name)")
    devices: list[str] = Field(default=[], description="Allowed devices (empty: any seen)")
    require_known_device: bool = Field(
        default=True, description="Refuse to record a device never seen on the broker"
    )
    unknown_device_wait: float = Field(
        default=3.0,
        ge=0,
        le=60,
        description="Wait this long for a frame of a device not seen yet before refusing (s)",
    )
    max_session_seconds: float = Field(
        default=4 * 3600.0, gt=0, le=7 * 86400, description="Close a session left open after (s)"
    )
    rotate_rows: int = Field(
        default=1_000_000, ge=1000, description="Rows per Parquet part of a long session"
    )
    predictions_rotate_rows: int = Field(default=50_000, ge=1, description="Predictions per part")
    predictions_rotate_seconds: float = Field(default=600.0, gt=0, description="Part age (s)")
    record_predictions: bool = Field(default=True, description="Log every prediction")
    fsync: bool = Field(default=True, description="fsync before acknowledging (durability)")
    session_expiry: int = Field(
        default=86_400, ge=60, description="Broker keeps our queue this long while we are down (s)"
    )
    max_batch: int = Field(default=2000, ge=1, description="Messages per group commit")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        return [validate_name(v) for v in value]

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: list[str]) -> list[str]:
        try:
            return [topics.validate_device_id(v) for v in value]
        except PayloadError as exc:
            raise ValueError(str(exc)) from exc


def config_from(settings: RecorderSettings) -> RecorderConfig:
    """The core's configuration from the service settings."""
    return RecorderConfig(
        data_dir=settings.data_dir,
        labels=tuple(settings.labels),
        devices=tuple(settings.devices),
        require_known_device=settings.require_known_device,
        max_session_seconds=settings.max_session_seconds,
        rotate_rows=settings.rotate_rows,
        predictions_rotate_rows=settings.predictions_rotate_rows,
        predictions_rotate_seconds=settings.predictions_rotate_seconds,
        fsync=settings.fsync,
    )


class RecorderService:
    """Runtime handler: MQTT messages -> :class:`Recorder`, replies and retained status."""

    def __init__(
        self, settings: RecorderSettings, runtime: ServiceRuntime, core: Recorder | None = None
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.root = settings.topic_root
        self.core = core or Recorder(config_from(settings))
        self.core.open()
        self._cmd_topic = topics.RECORDER_CMD.format(self.root)
        self._reply_topic = topics.RECORDER_REPLY.format(self.root)
        self._status_topic = topics.RECORDER_STATUS.format(self.root)
        self._last_status = 0.0
        self._last_error: str | None = None
        self.imu = ImuSubscriptions(runtime, self.root)
        self.imu.sync(set(self.core.by_device))  # recovered sessions: subscribed on connect
        self.starts = StartGate(self.core, self.imu, self._reply, settings.unknown_device_wait)

    def subscriptions(self) -> list[tuple[str, int]]:
        """Commands, device status, predictions, and the frames of every open session."""
        subs = [(self._cmd_topic, 1), (topics.DEVICE_STATUS.subscription(self.root), 0)]
        if self.settings.record_predictions:
            subs.append((topics.PREDICTION.subscription(self.root), 1))
        return subs + self.imu.connect_topics()

    def handle_batch(self, messages: list[Inbound]) -> None:
        for message in messages:
            if message.topic == EVENT_TOPIC:  # a SUBACK/UNSUBACK, from paho's thread
                self.starts.event(message.payload)
                continue
            try:
                self._dispatch(message)
            except PayloadError as exc:
                self.runtime.reject(exc.reason, f"{message.topic}: {exc.args[0]}")
            self.core.defer_ack(message.ack)
        self.core.commit()
        self.starts.poll()
        self._check_error()

    def _dispatch(self, message: Inbound) -> None:
        if message.topic == self._cmd_topic:
            self._command(message)
            return
        values = topics.IMU.parse(message.topic, self.root)
        if values is not None:
            device = values["device"]
            result = self.core.frame(device, message.payload, message.qos, message.received_at)
            if result == "unrecorded" and not self.starts.evidence(device):
                self.imu.stray(device)  # in flight after a stop, or a leftover subscription
            return
        values = topics.PREDICTION.parse(message.topic, self.root)
        if values is not None:
            self.core.prediction(message.payload, message.received_at, message.qos)
            return
        self._device_status(message)

    def _device_status(self, message: Inbound) -> None:
        level = message.topic[len(self.root) + 1 :].split("/", 1)[0]
        if level.lower() in topics.RESERVED_NAMES:
            return  # our own har/recorder/status and friends
        values = topics.DEVICE_STATUS.parse(message.topic, self.root)
        if values is None:
            return
        device = values["device"]
        if not message.payload:  # retained status cleared: the device is gone
            self.core.forget_device(device)
            return
        if _status_device(message.payload) != device:
            raise PayloadError("bad_status", f"{message.topic}: not a status of {device!r}")
        self.core.note_device(device, message.received_at)
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
            else:
                data = self.core.stop(command, now)
            reply = RecorderReply(ok=True, action=action, data=data)
        except PayloadError as exc:
            self.runtime.reject(exc.reason, f"command: {exc.args[0]}")
            reply = RecorderReply(ok=False, action=_guess_action(message.payload), error=str(exc))
        except CommandError as exc:
            self.runtime.counters.inc("command_errors")
            reply = RecorderReply(ok=False, action=action, error=str(exc))
        self._reply(message, reply)

    def _reply(self, request: Inbound, reply: RecorderReply) -> None:
        """Answer a command; a started or stopped session shows in the retained status at once."""
        if reply.action in ("start", "stop"):
            self._publish_status(force=True)
        self.runtime.reply(request, reply.to_payload(), self._reply_topic)

    def tick(self, now: float) -> None:
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
        status = self.core.status(time.time())
        return {
            "recording": [s["session"] for s in status["recording"]],
            "rows": {s["session"]: s["rows"] for s in status["recording"]},
            "error": status["error"],
            "data_dir": status["data_dir"],
            "imu_subscriptions": sorted(self.imu.devices),
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


def make_runtime(settings: RecorderSettings) -> ServiceRuntime:
    """A runtime with the durable subscription the recorder needs."""
    if not settings.client_id:
        settings = settings.model_copy(
            update={"client_id": "har-recorder-" + settings.topic_root.replace("/", "-")}
        )
    return ServiceRuntime(
        "recorder",
        settings,
        manual_ack=True,
        clean_start=False,
        session_expiry=settings.session_expiry,
        max_batch=settings.max_batch,
        batch_wait=0.002,
        queue_limit=None,  # never shed: QoS 1 input is acknowledged only once written
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``har recorder``: labelled Parquet recordings by command."""
    settings = service_settings(
        RecorderSettings, "recorder", "Record labelled sessions and predictions to Parquet.", argv
    )
    runtime = make_runtime(settings)
    return runtime.run(RecorderService(settings, runtime))
