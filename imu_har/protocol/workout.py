"""Workout messages: one per repetition, one per finished set, and the device's state.

Published by ``har workout`` (services/workout) on ``<root>/<device>/rep``,
``<root>/<device>/set`` and, retained, ``<root>/<device>/workout``
(docs/protocol.md, "Workouts"). Like every message they are strict pydantic
models: unknown fields, non-finite numbers and out-of-range values are errors.

An exercise with an incorrect-form class is named ``<X>`` and ``<X>_Incorrect``
in a model's labels; both count as exercise ``<X>`` here (:func:`split_form`).
"""

from __future__ import annotations

import re
import time
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from imu_har.protocol import topics
from imu_har.protocol.messages import DeviceId, Label, Message, validate_name
from imu_har.protocol.topics import TopicTemplate

INCORRECT_SUFFIX = "_Incorrect"
MAX_EXERCISES = 64  # totals per device and day: a model has a handful of classes
Form = Literal["correct", "incorrect", "unknown"]


def split_form(label: str) -> tuple[str, bool]:
    """``("Pushup", True)`` for ``Pushup_Incorrect``; ``(label, False)`` otherwise."""
    if label.endswith(INCORRECT_SUFFIX) and len(label) > len(INCORRECT_SUFFIX):
        return label[: -len(INCORRECT_SUFFIX)], True
    return label, False


def check_exercise(value: str) -> str:
    """``value`` if it is a usable exercise name, else :class:`ValueError`.

    An exercise is a model's label (or its ``<X>`` part): the one label rule,
    :func:`imu_har.protocol.messages.validate_name`.
    """
    return validate_name(value)


Exercise = Label
"""An exercise name: a label (:data:`imu_har.protocol.messages.Label`)."""
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def _ordered(start: float, end: float) -> None:
    if end < start:
        raise ValueError("end is before start")


class RepEvent(Message):
    """One completed repetition, on ``<root>/<device>/rep`` (QoS 1, not retained)."""

    model_config = _STRICT
    TOPIC: ClassVar[TopicTemplate | None] = topics.REP
    device: DeviceId = Field(description="Device id")
    exercise: Exercise = Field(description="Exercise (both forms of <X>/<X>_Incorrect are <X>)")
    set: int = Field(ge=1, description="Set number in this device's workout today")
    rep: int = Field(ge=1, description="Repetition number in the set")
    start: float = Field(ge=0, description="Start of the repetition (Unix s)")
    end: float = Field(ge=0, description="End of the repetition (Unix s)")
    form: Form = Field(description="correct, incorrect, or unknown (no incorrect-form class)")
    confidence: float = Field(
        ge=0, le=1, description="Classifier support for this exercise (and form) over the rep"
    )

    @model_validator(mode="after")
    def _check(self) -> RepEvent:
        _ordered(self.start, self.end)
        return self


class SetEvent(Message):
    """A finished set, on ``<root>/<device>/set`` (QoS 1, not retained)."""

    model_config = _STRICT
    TOPIC: ClassVar[TopicTemplate | None] = topics.SET
    device: DeviceId = Field(description="Device id")
    exercise: Exercise = Field(description="Exercise")
    set: int = Field(ge=1, description="Set number in this device's workout today")
    reps: int = Field(ge=1, description="Repetitions in the set")
    start: float = Field(ge=0, description="Start of the first repetition (Unix s)")
    end: float = Field(ge=0, description="End of the last repetition (Unix s)")
    incorrect: int = Field(ge=0, description="Repetitions judged incorrect")
    mean_rep_seconds: float = Field(ge=0, description="Mean repetition duration (s)")

    @model_validator(mode="after")
    def _check(self) -> SetEvent:
        _ordered(self.start, self.end)
        if self.incorrect > self.reps:
            raise ValueError("more incorrect repetitions than repetitions")
        return self


class ExerciseTotals(BaseModel):
    """One exercise's totals for the day."""

    model_config = _STRICT
    sets: int = Field(default=0, ge=0, description="Sets finished")
    reps: int = Field(default=0, ge=0, description="Repetitions")
    incorrect: int = Field(default=0, ge=0, description="Repetitions judged incorrect")


class WorkoutState(Message):
    """A device's current workout state, retained on ``<root>/<device>/workout``."""

    model_config = _STRICT
    TOPIC: ClassVar[TopicTemplate | None] = topics.WORKOUT
    device: DeviceId = Field(description="Device id")
    state: Literal["rest", "set"] = Field(description="In a set, or resting")
    exercise: Exercise | None = Field(default=None, description="Exercise of the current set")
    set: int = Field(default=0, ge=0, description="Current set number (0: none yet today)")
    reps: int = Field(default=0, ge=0, description="Repetitions so far in the current set")
    date: str = Field(description="Day of the totals, YYYY-MM-DD (service's local time)")
    totals: dict[Exercise, ExerciseTotals] = Field(
        default_factory=dict,
        max_length=MAX_EXERCISES,
        description="Today's totals per exercise (sets include the current one once finished)",
    )
    updated_at: float = Field(default_factory=time.time, description="Time of this state (Unix s)")

    @model_validator(mode="after")
    def _date(self) -> WorkoutState:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.date):
            raise ValueError("date must be YYYY-MM-DD")
        return self


WorkoutMessage = RepEvent | SetEvent | WorkoutState
"""What ``har workout`` publishes."""
