"""Settings of ``har recorder``: every default is declared here, and only here.

:class:`RecorderConfig` is the part the pure core takes (frozen, nothing about
MQTT); :class:`RecorderSettings` is the whole service's settings: the broker
connection (:class:`~imu_har.runtime.settings.MqttSettings`), the core's part
and what only the MQTT shell needs. Flags, ``HAR_*`` environment variables and
``--config`` files are generated from these fields
(:mod:`imu_har.runtime.settings`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from imu_har.protocol import topics
from imu_har.protocol.commands import validate_name
from imu_har.protocol.errors import PayloadError
from imu_har.runtime.settings import MqttSettings, nice_field

MIB = 1024 * 1024


class RecorderConfig(BaseModel):
    """What the recorder's core takes from the settings (frozen)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    data_dir: Path = Field(default=Path("data"), description="Where recordings are written")
    labels: tuple[str, ...] = Field(
        default=(), description="Allowed labels (empty: any valid name)"
    )
    devices: tuple[str, ...] = Field(default=(), description="Allowed devices (empty: any seen)")
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
    # Predictions may be up to 256 KiB each: 50,000 of them would be 12 GiB of segment,
    # read back whole when it is compacted.
    predictions_rotate_bytes: int = Field(
        default=64 * MIB, ge=MIB, description="Prediction segment size that starts a new part"
    )
    fsync: bool = Field(default=True, description="fsync before acknowledging (durability)")
    retry_seconds: float = Field(
        default=1.0, ge=0, le=3600, description="Retry a failed write after (s)"
    )
    max_pending_bytes: int = Field(
        default=64 * MIB,
        ge=0,
        description="QoS 0 input buffered while writes fail before more is shed (bytes)",
    )
    list_limit: int = Field(
        default=200, ge=1, le=100_000, description="Most sessions in a 'list' reply"
    )
    # Issue 12.4: 400,000 fake ids published on <root>/<id>/status grew the recorder by 51 MB.
    max_known_devices: int = Field(
        default=10_000,
        ge=1,
        description="Devices remembered as seen; the least recently seen is forgotten first",
    )
    max_sessions: int = Field(
        default=1000,
        ge=1,
        description="Sessions open or being finalized at once (each holds an open file)",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(validate_name(v) for v in value)

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return tuple(topics.validate_device_id(v) for v in value)
        except PayloadError as exc:
            raise ValueError(str(exc)) from exc


class RecorderSettings(RecorderConfig, MqttSettings):
    """Settings of ``har recorder``: the broker, the core's :class:`RecorderConfig`, the shell."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    cpu_nice: int = nice_field(
        10,
        "Lower this service's CPU priority by this (nice): it must lose nothing, not be quick",
    )
    unknown_device_wait: float = Field(
        default=3.0,
        ge=0,
        le=60,
        description="Wait this long for a frame of a device not seen yet before refusing (s)",
    )
    max_pending_starts: int = Field(
        default=100,
        ge=1,
        description="Start commands waiting at once for their subscription or device",
    )
    record_predictions: bool = Field(default=True, description="Log every prediction")
    record_workouts: bool = Field(
        default=True, description="Log every rep and set event (har workout)"
    )
    session_expiry: int = Field(
        default=86_400, ge=60, description="Broker keeps our queue this long while we are down (s)"
    )
    max_batch: int = Field(default=2000, ge=1, description="Messages per group commit")

    def default_client_id(self) -> str:
        """The fixed client id the broker keeps our session under (``--client-id`` wins)."""
        return self.client_id or "har-recorder-" + self.topic_root.replace("/", "-")
