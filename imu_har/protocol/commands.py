"""JSON commands and replies for the recorder and the classifier.

Commands arrive on ``<root>/recorder/cmd`` and ``<root>/classifier/cmd``.
Replies go to the MQTT v5 response topic with the request's correlation data,
and to ``<root>/<service>/reply`` for v3.1.1 clients that cannot set one.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from imu_har.protocol import topics
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import MAX_JSON_BYTES, DeviceId, Label, Message, Name, invalid
from imu_har.protocol.messages import validate_name as validate_name  # the one name rule
from imu_har.protocol.topics import TopicTemplate

MAX_COMMAND_BYTES = 16 * 1024
MAX_REPS = 100_000  # repetitions a person counted in one session (a day of jumping is ~10^4)


class StartRecording(Message):
    """Start recording ``device`` as ``label`` (reply carries the new session id)."""

    action: Literal["start"]
    device: DeviceId = Field(description="Device to record")
    label: Label = Field(description="Activity label for every row of the session")
    subject: Name | None = Field(default=None, description="Who is wearing the device")
    notes: str = Field(default="", max_length=1000, description="Free text kept in the manifest")
    max_seconds: float | None = Field(default=None, gt=0, description="Auto-stop after this long")
    reps: StrictInt | None = Field(
        default=None, ge=0, le=MAX_REPS, description="Repetitions the person counted (manifest)"
    )


class StopRecording(Message):
    """Stop the open session of ``device``, or the session named ``session``."""

    action: Literal["stop"]
    device: DeviceId | None = Field(default=None, description="Device whose session to stop")
    session: Name | None = Field(default=None, description="Session id to stop")

    @model_validator(mode="after")
    def _one_target(self) -> StopRecording:
        if (self.device is None) == (self.session is None):
            raise ValueError("stop needs exactly one of 'device' or 'session'")
        return self


class RecorderQuery(Message):
    """Ask for the recorder's state (``status``) or its finished sessions (``list``)."""

    action: Literal["status", "list"]


class RelabelSession(Message):
    """Give every row of a finished session another label (Parquet parts and manifest)."""

    action: Literal["relabel"]
    session: Name = Field(description="Finished session to relabel")
    label: Label = Field(description="The new label")


class ExcludeSession(Message):
    """Keep a finished session out of training (``excluded`` in its manifest), or back in."""

    action: Literal["exclude"]
    session: Name = Field(description="Finished session")
    excluded: StrictBool = Field(default=True, description="True: left out of training")


class DeleteSession(Message):
    """Delete a finished session: its Parquet parts and its manifest."""

    action: Literal["delete"]
    session: Name = Field(description="Finished session to delete")


class SetReps(Message):
    """Set (or clear, with null) the repetitions counted in a finished session."""

    action: Literal["set_reps"]
    session: Name = Field(description="Finished session")
    reps: StrictInt | None = Field(ge=0, le=MAX_REPS, description="Repetitions counted")


SessionEdit = RelabelSession | ExcludeSession | DeleteSession | SetReps
AnyRecorderCommand = StartRecording | StopRecording | RecorderQuery | SessionEdit
RecorderCommand = Annotated[AnyRecorderCommand, Field(discriminator="action")]
_T = TypeVar("_T")
_RECORDER_COMMAND: TypeAdapter[AnyRecorderCommand] = TypeAdapter(RecorderCommand)


class ClassifierCommand(Message):
    """Reload a model artifact directory, or ask for the classifier's state."""

    action: Literal["reload", "status"]
    model: str | None = Field(default=None, max_length=4096, description="Artifact directory")


class CommandReply(Message):
    """The answer to any command."""

    ok: bool = Field(description="Whether the command succeeded")
    action: str = Field(default="", description="The action this answers")
    error: str | None = Field(default=None, description="Why it failed, human readable")
    data: dict[str, object] = Field(default_factory=dict, description="Action-specific result")


class RecorderReply(CommandReply):
    """Reply of the recorder (fallback topic ``<root>/recorder/reply``)."""

    TOPIC: ClassVar[TopicTemplate | None] = topics.RECORDER_REPLY


class ClassifierReply(CommandReply):
    """Reply of the classifier (fallback topic ``<root>/classifier/reply``)."""

    TOPIC: ClassVar[TopicTemplate | None] = topics.CLASSIFIER_REPLY


def parse_command(adapter: TypeAdapter[_T], payload: bytes) -> _T:
    """Parse a command with ``adapter`` or raise :class:`PayloadError` saying what is wrong
    (``too_large``, ``bad_command``): every service's command topic parses this way."""
    if len(payload) > min(MAX_COMMAND_BYTES, MAX_JSON_BYTES):
        raise PayloadError("too_large", f"command of {len(payload)} bytes is too large")
    try:
        return adapter.validate_json(payload)
    except ValidationError as exc:
        raise invalid("bad_command", exc, what="command") from exc


def parse_recorder_command(payload: bytes) -> AnyRecorderCommand:
    """Parse a recorder command or raise :class:`PayloadError` saying what is wrong."""
    return parse_command(_RECORDER_COMMAND, payload)
