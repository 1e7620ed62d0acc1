"""Settings of ``har gateway`` (every default once, here) and the checks that refuse bad ones.

Field validators refuse a bad value (exit 2 with the flag's name, before
connecting); :func:`startup_problem` refuses combinations (``build`` raises it
as a ``StartupError``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from imu_har.protocol.codec import MAX_RATE_HZ
from imu_har.protocol.topics import validate_device_id
from imu_har.runtime.settings import MqttSettings
from imu_har.sim.simulation import parse_schedule
from services.ble_gateway import packets
from services.ble_gateway.specs import (
    BleDeviceConfig,
    parse_device_map,
    parse_device_specs,
)

MAX_SIM_DEVICES = 100_000


class GatewaySettings(MqttSettings):
    """Settings of ``har gateway``."""

    source: Literal["sim", "ble", "replay"] = Field(
        default="sim", description="Where data comes from"
    )
    qos: int = Field(default=0, ge=0, le=1, description="QoS of raw frames")
    truth: bool = Field(default=True, description="Publish ground truth (sim, labelled replay)")
    max_devices: int = Field(
        default=10_000, ge=1, le=MAX_SIM_DEVICES, description="Most wearables served; more refused"
    )
    # sim
    devices: int = Field(
        default=3, ge=1, le=MAX_SIM_DEVICES, description="Simulated wearables (sim)"
    )
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
    replay_rate: float | None = Field(
        default=None, gt=0, le=MAX_RATE_HZ, description="Rate when no time column"
    )
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

    @field_validator("device_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        validate_device_id(f"{value}-{MAX_SIM_DEVICES}")  # the longest id it makes
        return value

    @field_validator("ble_devices")
    @classmethod
    def _ble(cls, value: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        parse_device_specs(value)
        return value

    @field_validator("device_map")
    @classmethod
    def _map(cls, value: list[str]) -> list[str]:
        parse_device_map(value)
        return value

    def ble_configs(self) -> list[BleDeviceConfig]:
        """The ``--ble-devices`` entries, parsed (already validated)."""
        return parse_device_specs(self.ble_devices)

    def renames(self) -> dict[str, str]:
        """The ``--device-map`` renames ``{old: new}`` (already validated)."""
        return parse_device_map(self.device_map)


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
    wearables = len(s.ble_devices) if s.source == "ble" and s.ble_devices else s.devices
    if s.source != "replay" and wearables > s.max_devices:
        return f"{wearables} wearables are more than --max-devices {s.max_devices}"
    return None
