"""Settings of ``har trainer``: every default is declared here, and only here.

:class:`TrainerConfig` is the part the job logic takes (frozen, nothing about
MQTT); :class:`TrainerSettings` adds the broker connection. Flags, ``HAR_*``
environment variables and ``--config`` files are generated from these fields
(:mod:`imu_har.runtime.settings`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from imu_har.runtime.settings import MqttSettings


class TrainerConfig(BaseModel):
    """What the trainer's job logic takes from the settings (frozen)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    data_dir: Path = Field(
        default=Path("data"), description="The recorder's data directory (read only)"
    )
    models_dir: Path = Field(
        default=Path("models"), description="Where artifacts <name>-<version>/ are written"
    )
    max_history: int = Field(default=50, ge=1, le=10_000, description="Finished jobs remembered")
    max_folds: int = Field(
        default=10,
        ge=2,
        le=100,
        description="Leave-one-group-out up to this many groups; grouped K-fold beyond",
    )
    min_windows_per_label: int = Field(
        default=10, ge=2, description="Refuse a job with fewer windows of a label than this"
    )
    max_sessions: int = Field(
        default=10_000, ge=1, description="Session manifests read from the data directory"
    )
    max_job_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="Cancel a job that runs longer than this (s)"
    )
    max_epochs: int = Field(default=1000, ge=1, description="Largest 'epochs' a job may ask")
    max_units: int = Field(default=512, ge=1, description="Largest 'units' a job may ask")
    max_layers: int = Field(default=8, ge=1, description="Largest 'layers' a job may ask")
    max_window: int = Field(default=2000, ge=2, description="Largest 'window' a job may ask")
    list_limit: int = Field(
        default=200, ge=1, le=10_000, description="Most artifacts in a 'list' reply"
    )
    progress_interval: float = Field(
        default=2.0, gt=0, le=60, description="Publish the status this often while training (s)"
    )
    worker_threads: int = Field(
        default=0, ge=0, le=256, description="TensorFlow threads of the training process (0: all)"
    )
    worker_nice: int = Field(
        default=10, ge=0, le=19, description="Niceness of the training process"
    )


class TrainerSettings(TrainerConfig, MqttSettings):
    """Settings of ``har trainer``: the broker and the job logic's :class:`TrainerConfig`."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
