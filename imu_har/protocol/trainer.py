"""Trainer commands, replies and the retained status (``har trainer``, services/trainer).

Commands arrive on ``<root>/trainer/cmd``; replies go to the MQTT v5 response
topic, else to ``<root>/trainer/reply`` (docs/protocol.md, "Trainer commands").
Progress and results are retained on ``<root>/trainer/status``. Every model is
strict: unknown fields, non-finite numbers, names that are not safe path
components or topic levels are refused with :class:`PayloadError`.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
)

from imu_har.protocol import topics
from imu_har.protocol.commands import CommandReply, Name, parse_command
from imu_har.protocol.messages import DeviceId, Message
from imu_har.protocol.topics import TopicTemplate

MAX_SELECTION = 1000  # session ids, or filter values of one kind, in one command
MAX_PARAMS = 32
# A model name becomes a directory <models>/<name>-<version>: one path component,
# no dots (no '..', no hidden directories), no spaces or wildcards.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}")
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}")
JobState = Literal["running", "done", "failed", "cancelled"]
Phase = Literal["starting", "loading", "cv", "fit", "export", "done", "failed", "cancelled"]


def validate_model_name(value: str) -> str:
    """A model name: 1-64 of ``[A-Za-z0-9_-]``, starting with a letter or digit."""
    if not isinstance(value, str) or not _MODEL_NAME.fullmatch(value):
        raise ValueError(
            f"{value[:80]!r} is not a safe model name: 1-64 letters, digits, '_' or '-'"
        )
    return value


def _job_id(value: str) -> str:
    if not _JOB_ID.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not a job id")
    return value


ModelName = Annotated[str, AfterValidator(validate_model_name)]
JobId = Annotated[str, AfterValidator(_job_id)]
ParamValue = StrictInt | StrictFloat | StrictStr | StrictBool | None


class SessionFilter(BaseModel):
    """Finished sessions whose label, subject and device are each in the given lists."""

    model_config = ConfigDict(extra="forbid")
    labels: list[Name] | None = Field(default=None, max_length=MAX_SELECTION)
    subjects: list[Name] | None = Field(default=None, max_length=MAX_SELECTION)
    devices: list[DeviceId] | None = Field(default=None, max_length=MAX_SELECTION)


class TrainCommand(Message):
    """Train a model named ``name`` on recorded sessions (by id, or all matching a filter)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    action: Literal["train"]
    name: ModelName = Field(description="Model name; the artifact is <models>/<name>-<version>")
    sessions: list[Name] | None = Field(
        default=None, min_length=1, max_length=MAX_SELECTION, description="Session ids"
    )
    filter: SessionFilter | None = Field(default=None, description="Select sessions instead")
    params: dict[Annotated[str, Field(max_length=32)], ParamValue] = Field(
        default_factory=dict, max_length=MAX_PARAMS, description="TrainParams fields to change"
    )
    cv: Literal["subject", "session"] | Annotated[StrictInt, Field(ge=2, le=100)] | None = Field(
        default=None,
        description="Grouped validation: by subject, by session, or K grouped folds "
        "(default: subject when every session names one, else session)",
    )


class CancelJob(Message):
    """Cancel a running job: its process is stopped and nothing of it is kept."""

    action: Literal["cancel"]
    job: JobId


class TrainerQuery(Message):
    """The trainer's state (``status``) or its jobs and the models directory (``list``)."""

    action: Literal["status", "list"]


AnyTrainerCommand = TrainCommand | CancelJob | TrainerQuery
_COMMAND: TypeAdapter[AnyTrainerCommand] = TypeAdapter(
    Annotated[AnyTrainerCommand, Field(discriminator="action")]
)


def parse_trainer_command(payload: bytes) -> AnyTrainerCommand:
    """Parse a trainer command or raise :class:`PayloadError` saying what is wrong."""
    return parse_command(_COMMAND, payload)


class TrainerReply(CommandReply):
    """Reply of the trainer (fallback topic ``<root>/trainer/reply``)."""

    TOPIC: ClassVar[TopicTemplate | None] = topics.TRAINER_REPLY


class JobProgress(BaseModel):
    """Where a job is: phase, fold, epoch and the latest training loss/accuracy."""

    model_config = ConfigDict(extra="forbid")
    job: str
    name: str
    state: JobState
    phase: Phase
    fold: int | None = Field(default=None, description="Fold being trained (1-based)")
    folds: int | None = Field(default=None, description="Folds of the grouped validation")
    epoch: int | None = Field(default=None, description="Last finished epoch (1-based)")
    epochs: int | None = None
    loss: float | None = Field(default=None, description="Training loss of the last epoch")
    accuracy: float | None = Field(default=None, description="Training accuracy, last epoch")
    elapsed: float = Field(ge=0, description="Seconds since the job started")
    eta: float | None = Field(default=None, description="Estimated seconds left")
    started_at: float
    finished_at: float | None = None
    sessions: int = Field(ge=0, description="Sessions trained on")
    grouping: str = Field(description="subject or session: what the folds keep apart")
    error: str | None = None
    result: dict[str, object] | None = Field(
        default=None,
        description="When done: artifact, version, cv (folds, mean accuracy and macro-F1, "
        "confusion matrix)",
    )


class TrainerStatus(Message):
    """Retained on ``<root>/trainer/status``: the running (or last) job, refreshed often."""

    TOPIC: ClassVar[TopicTemplate | None] = topics.TRAINER_STATUS
    state: Literal["online", "offline"]
    busy: bool = Field(description="A job is running")
    job: JobProgress | None = Field(description="The running job, else the last one")
    models_dir: str
    data_dir: str
    updated_at: float
