"""JSON messages: predictions, device and service status, ground truth.

Pydantic v2 models with ``extra="forbid"``; each knows its topic template.
``Message.from_payload`` turns any bad JSON or field into :class:`PayloadError`.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from imu_har.protocol import topics
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import TopicTemplate, validate_device_id

MAX_JSON_BYTES = 256 * 1024
# Classes of one model (a spec's labels, a prediction's probabilities): the models here have
# 8; a bound keeps a hostile spec or prediction from making every reader build huge tables.
MAX_LABELS = 256
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _\-]{0,63}")  # full match: "$" allows a trailing newline


def invalid(
    reason: str, exc: ValidationError, prefix: str = "", what: str = "payload"
) -> PayloadError:
    """The :class:`PayloadError` for a failed validation: where the first error is and why,
    bounded (an attacker's long key would otherwise be repeated into logs and replies)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or what
    return PayloadError(reason, f"{prefix}{where}: {first['msg']}"[:300])


class Message(BaseModel):
    """Base of every JSON message: strict fields, a topic template, safe parsing."""

    model_config = ConfigDict(extra="forbid", frozen=False)
    TOPIC: ClassVar[TopicTemplate | None] = None

    @classmethod
    def from_payload(cls, payload: bytes | str) -> Self:
        """Parse a JSON payload, raising :class:`PayloadError` on any problem."""
        if len(payload) > MAX_JSON_BYTES:
            raise PayloadError("too_large", f"JSON payload of {len(payload)} bytes is too large")
        try:
            return cls.model_validate_json(payload)
        except ValidationError as exc:
            raise invalid("bad_json", exc, f"{cls.__name__}: ", "payload") from exc

    def to_payload(self) -> bytes:
        """Serialize to compact JSON bytes (``None`` fields kept for clarity)."""
        return self.model_dump_json().encode()


DeviceId = Annotated[str, AfterValidator(validate_device_id)]
"""A device id, validated like a topic level (see :func:`topics.validate_device_id`)."""


def validate_name(value: str) -> str:
    """A label, subject or session name: letters, digits, space, ``_ -``; 1–64 chars.

    Excludes path separators, ``..``, MQTT wildcards and control characters, so
    a name can never escape the data directory or a topic level. The one rule
    for labels everywhere: recorder commands, predictions, model specs, workouts.
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{str(value)[:80]!r} must be 1-64 letters, digits, spaces, '_' or '-'")
    return value


Name = Annotated[str, AfterValidator(validate_name)]
"""A subject or session id (see :func:`validate_name`)."""

Label = Annotated[str, AfterValidator(validate_name)]
"""An activity label, a class of a model (``unknown`` and ``rest`` are ones): a :data:`Name`."""


class Prediction(Message):
    """One classified window, published on ``<root>/<device>/prediction``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every number finite
    TOPIC: ClassVar[TopicTemplate | None] = topics.PREDICTION
    device: DeviceId = Field(description="Device id the window came from")
    window_seq: int = Field(ge=0, description="Window sequence number from the windower")
    window_start: float = Field(description="Time of the window's first sample (Unix s)")
    window_end: float = Field(description="Time of the window's last sample (Unix s)")
    label: Label = Field(description="Most probable class, or 'unknown' below the threshold")
    confidence: float = Field(ge=0, le=1, description="Probability of the most probable class")
    probabilities: dict[Label, float] = Field(
        max_length=MAX_LABELS, description="Probability of every class"
    )
    smoothed_label: Label = Field(description="Label smoothed over the device's last k windows")
    model: str = Field(description="Model name")
    model_version: str = Field(description="Model content hash")
    latency_ms: float = Field(ge=0, description="Time from window receipt to publication (ms)")
    source_time: float = Field(default=0.0, description="Receive time of the newest frame (Unix s)")
    classified_at: float = Field(default_factory=time.time, description="Publication time (Unix s)")


DeviceState = Literal["scanning", "connecting", "connected", "disconnected", "streaming", "error"]


class DeviceStatus(Message):
    """A wearable's link state, retained on ``<root>/<device>/status`` by the gateway."""

    TOPIC: ClassVar[TopicTemplate | None] = topics.DEVICE_STATUS
    device: DeviceId = Field(description="Device id")
    state: DeviceState = Field(description="Link state")
    source: str = Field(default="ble", description="ble, sim, replay or phone")
    address: str | None = Field(default=None, description="BLE address when known")
    rssi: int | None = Field(default=None, description="Signal strength in dBm when known")
    fps: float = Field(default=0.0, ge=0, description="Frames published per second, recent")
    sample_rate: float = Field(default=0.0, ge=0, description="Samples per second, recent")
    frames: int = Field(default=0, ge=0, description="Frames published since start")
    lost_packets: int = Field(default=0, ge=0, description="Packets missing by sequence gaps")
    decode_errors: int = Field(default=0, ge=0, description="Notifications that failed to decode")
    channels: list[str] | None = Field(
        default=None, description="Channels of its frames when not the default nine (phones)"
    )
    acceleration: str | None = Field(
        default=None,
        description="A phone's acceleration: total, accelerometer+gravity, or none (no gravity)",
    )
    duplicates: int = Field(default=0, ge=0, description="Repeated batches dropped (phones)")
    reordered: int = Field(default=0, ge=0, description="Batches put back in order (phones)")
    late: int = Field(default=0, ge=0, description="Batches that came after their turn (phones)")
    error: str | None = Field(default=None, description="Last error, human readable")
    updated_at: float = Field(default_factory=time.time, description="Unix time of this status")


class Counters(BaseModel):
    """Counters every service reports in its status."""

    model_config = ConfigDict(extra="forbid")
    messages_in: int = Field(default=0, description="Messages received")
    messages_out: int = Field(default=0, description="Messages published")
    rejected: dict[str, int] = Field(default_factory=dict, description="Rejected, by reason slug")
    queue_depth: int = Field(default=0, description="Messages waiting to be handled")
    events: dict[str, int] = Field(default_factory=dict, description="Other counted events")


class ServiceStatus(Message):
    """A service's state, retained on ``<root>/service/<name>/status``.

    The broker publishes the ``offline`` variant as the service's Last Will.
    ``details`` holds service-specific state (active model, devices, sessions).
    """

    TOPIC: ClassVar[TopicTemplate | None] = topics.SERVICE_STATUS
    service: str = Field(description="Service name, e.g. windower")
    instance: str = Field(description="Client id of this process")
    state: Literal["online", "offline"] = Field(description="online, or offline (Last Will)")
    version: str = Field(default="", description="imu-har version")
    started_at: float = Field(default=0.0, description="Process start (Unix s)")
    updated_at: float = Field(default_factory=time.time, description="Time of this status")
    counters: Counters = Field(default_factory=Counters, description="Traffic counters")
    errors: list[str] = Field(default_factory=list, description="Recent error lines, newest last")
    details: dict[str, object] = Field(default_factory=dict, description="Service-specific state")


class GroundTruth(Message):
    """What a simulated wearable is really doing, on ``<root>/<device>/truth``."""

    TOPIC: ClassVar[TopicTemplate | None] = topics.GROUND_TRUTH
    device: DeviceId = Field(description="Device id")
    label: Label = Field(description="True activity label ('rest' between exercises)")
    rep: int = Field(default=0, ge=0, description="Repetitions completed in this bout")
    time: float = Field(description="Time this label took effect (Unix s)")
    until: float | None = Field(default=None, description="Scheduled end of this bout (Unix s)")


class OpenSession(BaseModel):
    """One recording in progress, as the recorder reports it."""

    model_config = ConfigDict(extra="forbid")
    session: Name = Field(description="Session id")
    device: DeviceId = Field(description="Device being recorded")
    label: Label = Field(description="Activity label of every row")
    subject: Name | None = Field(default=None, description="Who wears the device")
    started_at: float = Field(description="Start time (Unix s)")
    seconds: float = Field(ge=0, description="Seconds since start")
    max_seconds: float | None = Field(default=None, description="Auto-stop limit, if any")
    rows: int = Field(ge=0, description="Sample rows written so far")
    frames: int = Field(ge=0, description="Frames written so far")
    stopping: bool = Field(default=False, description="Stop requested, finalizing")


class RecorderStatus(Message):
    """What the recorder is doing, retained on ``<root>/recorder/status``."""

    TOPIC: ClassVar[TopicTemplate | None] = topics.RECORDER_STATUS
    state: Literal["online", "offline"] = Field(description="offline when it shut down")
    recording: list[OpenSession] = Field(default_factory=list, description="Open sessions")
    finalizing: list[str] = Field(default_factory=list, description="Sessions being compacted")
    error: str | None = Field(default=None, description="Current storage error (e.g. disk full)")
    predictions: dict[str, int] = Field(default_factory=dict, description="Prediction log counts")
    counts: dict[str, int] = Field(default_factory=dict, description="Rows, frames, duplicates...")
    data_dir: str = Field(default="", description="Where recordings are written")
    updated_at: float = Field(default_factory=time.time, description="Time of this status")

    def session(self, session_id: str) -> OpenSession | None:
        """The open session with this id, if any."""
        return next((s for s in self.recording if s.session == session_id), None)
