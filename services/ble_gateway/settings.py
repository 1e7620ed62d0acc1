"""Settings of ``har gateway`` and the checks that refuse bad ones before connecting."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from imu_har.runtime.settings import MqttSettings
from imu_har.sim.simulation import parse_schedule
from services.ble_gateway import packets
from services.ble_gateway.ble import parse_device_spec


class GatewaySettings(MqttSettings):
    """Settings of ``har gateway``."""

    source: Literal["sim", "ble", "replay"] = Field(
        default="sim", description="Where data comes from"
    )
    qos: int = Field(default=0, ge=0, le=1, description="QoS of raw frames")
    truth: bool = Field(default=True, description="Publish ground truth (sim, labelled replay)")
    # sim
    devices: int = Field(default=3, ge=1, le=100_000, description="Simulated wearables (sim)")
    schedule: str | None = Field(
        default=None, description="Scripted schedule 'Squat:20,rest:5,...' (default: random)"
    )
    seed: int = Field(default=0, description="Random seed of the simulation")
    rate: float = Field(default=50.0, gt=0, le=1000, description="Sample rate (Hz) of sim/BLE")
    mtu: int = Field(default=247, ge=23, le=517, description="ATT MTU the sim packets fit in")
    tick: float | None = Field(
        default=None,
        gt=0,
        le=5,
        description="Sim notification interval (s); default: when a packet at --mtu is full",
    )
    device_prefix: str = Field(default="sim", description="Device id prefix of sim devices")
    # replay
    file: Path | None = Field(default=None, description="Parquet file or directory (replay)")
    speed: float = Field(default=1.0, gt=0, le=1000, description="Replay speed factor")
    replay_rate: float | None = Field(default=None, gt=0, description="Rate when no time column")
    units: Literal["auto", "default", "seed-fitness"] = Field(
        default="auto", description="Units of the replayed table"
    )
    device_map: list[str] = Field(default=[], description="Replay id renames old=new")
    loop: bool = Field(default=False, description="Replay forever")
    # ble
    ble_devices: list[str | dict[str, Any]] = Field(
        default=[], description="Wearables: 'id=..;address=..|name=..|service=..;format=..'"
    )
    ble_backend: Literal["bleak", "virtual"] = Field(
        default="bleak", description="bleak (real radio) or virtual (simulated peripherals)"
    )
    scan_timeout: float = Field(default=10.0, gt=0, description="Scan time per attempt (s)")
    backoff_max: float = Field(default=30.0, gt=0, description="Longest reconnect backoff (s)")
    silence_timeout: float = Field(default=5.0, gt=0, description="No data for this long: warn")
    queue_size: int = Field(default=100_000, ge=10, description="Packets buffered before dropping")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value:
            parse_schedule(value)
        return value

    @field_validator("ble_devices")
    @classmethod
    def _ble(cls, value: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        for spec in value:
            parse_device_spec(spec)
        return value

    @field_validator("device_map")
    @classmethod
    def _map(cls, value: list[str]) -> list[str]:
        if any("=" not in item for item in value):
            raise ValueError("each mapping must be old=new")
        return value


def startup_problem(s: GatewaySettings) -> str | None:
    """A readable reason why these settings cannot start, checked before connecting."""
    if s.source == "sim":
        try:
            packets.samples_per_packet(s.mtu)
        except ValueError as exc:
            return str(exc)
    if s.source == "replay" and (s.file is None or not s.file.exists()):
        return f"--source replay needs an existing --file (got {s.file})"
    if s.source == "ble" and s.ble_backend == "bleak" and not s.ble_devices:
        return "--source ble needs --ble-devices 'id=...;address=...' (see docs/gateway.md)"
    return None
