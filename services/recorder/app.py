"""``har recorder``: labelled Parquet recordings by command, and every prediction.

Subscribes with QoS 1 on a persistent MQTT v5 session (fixed client id,
``clean_start=False``, session expiry) and acknowledges each message only after
it is fsynced to a segment (see :mod:`services.recorder.core`), so neither a
``kill -9`` nor a broker restart loses a frame published with QoS 1.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from imu_har import topics
from imu_har.commands import (
    RecorderQuery,
    RecorderReply,
    StartRecording,
    parse_recorder_command,
    validate_name,
)
from imu_har.errors import PayloadError
from imu_har.logs import configure_logging
from imu_har.messages import RecorderStatus
from imu_har.runtime import Inbound, ServiceRuntime
from imu_har.settings import MqttSettings, load_settings
from services.recorder.core import CommandError, Recorder, RecorderConfig

logger = logging.getLogger(__name__)


class RecorderSettings(MqttSettings):
    """Settings of ``har recorder``."""

    data_dir: Path = Field(default=Path("data"), description="Where recordings are written")
    labels: list[str] = Field(default=[], description="Allowed labels (empty: any valid name)")
    devices: list[str] = Field(default=[], description="Allowed devices (empty: any seen)")
    require_known_device: bool = Field(
        default=True, description="Refuse to record a device never seen on the broker"
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

    def subscriptions(self) -> list[tuple[str, int]]:
        subs = [
            (self._cmd_topic, 1),
            (topics.IMU.subscription(self.root), 1),
            (topics.DEVICE_STATUS.subscription(self.root), 1),
        ]
        if self.settings.record_predictions:
            subs.append((topics.PREDICTION.subscription(self.root), 1))
        return subs

    def handle_batch(self, messages: list[Inbound]) -> None:
        for message in messages:
            try:
                self._dispatch(message)
            except PayloadError as exc:
                self.runtime.reject(exc.reason, f"{message.topic}: {exc.args[0]}")
            self.core.defer_ack(message.ack)
        self.core.commit()
        self._check_error()

    def _dispatch(self, message: Inbound) -> None:
        if message.topic == self._cmd_topic:
            self._command(message)
            return
        values = topics.IMU.parse(message.topic, self.root)
        if values is not None:
            self.core.frame(values["device"], message.payload, message.qos, message.received_at)
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
        if values is not None and message.payload:
            self.core.note_device(values["device"], message.received_at)

    def _command(self, message: Inbound) -> None:
        action = ""
        try:
            command = parse_recorder_command(message.payload)
            action = command.action
            now = time.time()
            if isinstance(command, StartRecording):
                data = self.core.start(command, now)
            elif isinstance(command, RecorderQuery):
                data = self.core.status(now) if action == "status" else self.core.list_sessions()
            else:
                data = self.core.stop(command, now)
            reply = RecorderReply(ok=True, action=action, data=data)
            self._publish_status(force=True)
        except PayloadError as exc:
            self.runtime.reject(exc.reason, f"command: {exc.args[0]}")
            reply = RecorderReply(ok=False, action=_guess_action(message.payload), error=str(exc))
        except CommandError as exc:
            self.runtime.counters.inc("command_errors")
            reply = RecorderReply(ok=False, action=action, error=str(exc))
        self.runtime.reply(message, reply.to_payload(), self._reply_topic)

    def tick(self, now: float) -> None:
        self.core.tick(now)
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
        }

    def close(self) -> None:
        """Commit and acknowledge what is buffered; open sessions resume on the next start."""
        self.core.close()
        self._publish_status(force=True, state="offline")


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
    """Entry point of ``har recorder``."""
    settings = load_settings(
        RecorderSettings,
        argv,
        prog="har recorder",
        description="Record labelled sessions and predictions to Parquet.",
    )
    configure_logging(settings.log_level, "recorder")
    runtime = make_runtime(settings)
    return runtime.run(RecorderService(settings, runtime))
