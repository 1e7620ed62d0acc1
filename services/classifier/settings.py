"""Settings of ``har classifier`` (flags, ``HAR_*`` environment, ``--config``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from imu_har.runtime.settings import MqttSettings


class ClassifierSettings(MqttSettings):
    """Settings of ``har classifier``."""

    model: Path | None = Field(default=None, description="Model artifact directory")
    watch_dir: Path | None = Field(default=None, description="Serve the newest artifact in here")
    watch_interval: float = Field(default=2.0, gt=0, description="Seconds between watch scans")
    model_root: Path | None = Field(
        default=None,
        description="Reloads must lie inside this dir or be --model itself "
        "(unset: --model's parent and --watch-dir)",
    )
    active_file: str = Field(
        default="active.json",
        description="File in the model root recording the model a reload command activated; "
        "served instead of --model at start",
    )
    ignore_active_file: bool = Field(
        default=False, description="Start from --model even when the active file names a model"
    )
    backend: Literal["auto", "onnx", "litert", "tensorflow"] = Field(
        default="auto", description="Inference backend (auto: faster of onnx/litert)"
    )
    allow_tensorflow: bool = Field(
        default=False,
        description="auto: fall back to TensorFlow (model.keras) when no ONNX/LiteRT export loads",
    )
    threads: int = Field(default=1, ge=1, le=64, description="Inference threads")
    max_batch: int = Field(default=256, ge=1, le=4096, description="Most windows per batch")
    batch_wait: float = Field(
        default=0.0, ge=0, le=1, description="Wait for more windows to fill a batch (s)"
    )
    smoothing: Literal["majority", "mean"] = Field(default="majority", description="Smoothing")
    smooth_k: int = Field(default=5, ge=1, le=1000, description="Windows smoothed over")
    threshold: float = Field(default=0.5, ge=0, le=1, description="Below this: 'unknown'")
    share_group: str | None = Field(default=None, description="MQTT v5 shared-subscription group")
    window_qos: int = Field(default=0, ge=0, le=1, description="QoS of the window subscription")
    grace: float = Field(default=5.0, ge=0, description="Old model takes its windows for (s)")
    idle_timeout: float = Field(default=300.0, gt=0, description="Forget a silent device (s)")
    max_devices: int = Field(default=10_000, ge=1, description="Most devices smoothed at once")

    @field_validator("active_file")
    @classmethod
    def _active_file(cls, value: str) -> str:
        # a plain name: the record lives in the model root, never anywhere else
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", value):
            raise ValueError("must be a file name of [A-Za-z0-9_.-] (no directory), up to 100")
        return value

    @field_validator("share_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", value):
            raise ValueError("must be 1-64 letters, digits, '_' or '-' (one topic level)")
        return value
