"""The model artifact's spec: what a model expects and what it predicts.

Written by ``har train`` as ``spec.json`` in the artifact directory, loaded by
the classifier, and published retained on ``<root>/model/spec`` so the windower
cuts exactly the windows the model was trained on. Light: no TensorFlow here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from imu_har.protocol import topics
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import MAX_LABELS, Label, Message
from imu_har.protocol.topics import TopicTemplate

SPEC_FILE = "spec.json"
SPEC_FORMAT = 1
KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"
TFLITE_FILE = "model.tflite"
INPUT_NAME = "window"  # float32 [batch, window, channels], raw units in spec channel order
OUTPUT_NAME = "probabilities"  # float32 [batch, n_labels], softmax, spec label order


class Normalization(BaseModel):
    """Per-channel standardization fitted on training data; exports apply it in-graph."""

    model_config = ConfigDict(extra="forbid")
    mean: list[float] = Field(description="Per-channel mean of the training windows")
    std: list[float] = Field(description="Per-channel standard deviation (floored > 0)")
    applied_in_model: bool = Field(default=True, description="Exports include this step")


class ModelSpec(Message):
    """Everything needed to feed a model and read its output."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    TOPIC: ClassVar[TopicTemplate | None] = topics.MODEL_SPEC

    format: int = Field(default=SPEC_FORMAT, description="Spec format version")
    name: str = Field(description="Model name, e.g. bilstm-default")
    version: str = Field(description="Content hash of the weights and spec (hex)")
    labels: list[Label] = Field(
        min_length=2, max_length=MAX_LABELS, description="Class labels, in output order"
    )
    channels: list[str] = Field(min_length=1, description="Input channels, in input order")
    units: list[str] | None = Field(default=None, description="Unit of each input channel")
    window: int = Field(ge=2, le=4096, description="Window length in samples")
    hop: int = Field(ge=1, le=4096, description="Samples between window starts")
    rate: float = Field(gt=0, le=10_000, description="Sample rate the model expects (Hz)")
    normalization: Normalization | None = Field(default=None, description="Input scaling")
    architecture: str = Field(default="bilstm", description="Model family")
    params: dict[str, object] = Field(default_factory=dict, description="Hyperparameters")
    training: dict[str, object] = Field(default_factory=dict, description="Training-data summary")
    metrics: dict[str, object] = Field(default_factory=dict, description="Evaluation results")
    created_at: str = Field(default="", description="ISO 8601 creation time")
    files: dict[str, str] = Field(default_factory=dict, description="Role -> file name present")

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        repeated = sorted(label for label, n in Counter(self.labels).items() if n > 1)
        if repeated:
            raise ValueError(f"labels repeat: {', '.join(map(repr, repeated[:5]))}")
        if self.units is not None and len(self.units) != len(self.channels):
            raise ValueError("units and channels differ in number")
        if self.normalization is not None:
            n = len(self.channels)
            if len(self.normalization.mean) != n or len(self.normalization.std) != n:
                raise ValueError("normalization does not match the channel count")
        return self


def load_spec(model_dir: str | Path) -> ModelSpec:
    """Read and validate ``spec.json`` from an artifact directory.

    Raises :class:`PayloadError` (reason ``bad_artifact``) naming the problem.
    """
    path = Path(model_dir) / SPEC_FILE
    if not path.is_file():
        raise PayloadError("bad_artifact", f"{path} does not exist: not a model artifact")
    try:
        return ModelSpec.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as exc:
        raise PayloadError("bad_artifact", f"{path} is not a valid spec: {exc}") from exc
