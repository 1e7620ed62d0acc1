"""Settings of ``har gateway`` (every default once, here) and the checks that refuse bad ones.

Field validators refuse a bad value (exit 2 with the flag's name, before
connecting); :func:`startup_problem` refuses combinations (``build`` raises it
as a ``StartupError``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from imu_har.protocol import topics
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
_PATH = re.compile(r"(/[A-Za-z0-9_\-]+)+")  # full matches only (issue 12)
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,128}")
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class GatewaySettings(MqttSettings):
    """Settings of ``har gateway``."""

    source: Literal["sim", "ble", "replay", "phone"] = Field(
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
    sim_style: Literal["steady", "realistic"] = Field(
        default="steady",
        description="Simulated sets: steady cadence, or realistic (set-up, uneven and partial "
        "reps, pauses, fatigue; an exercise lasts until its reps are done)",
    )
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
    # phone (docs/gateway.md, "--source phone")
    sensor_logger_topic: str = Field(
        default=topics.SENSOR_LOGGER_TOPIC, description="MQTT topic the Sensor Logger app uses"
    )
    sensor_logger_mqtt: bool = Field(
        default=True, description="Read Sensor Logger from the broker (its topic and below)"
    )
    sensor_logger_path: str = Field(
        default="/sensor-logger", description="Path of the HTTP push endpoint for Sensor Logger"
    )
    ios_native_axes: bool = Field(
        default=False,
        description="iPhones stream with Sensor Logger's 'Standardise Units & Frames' off: "
        "negate accelerometer and gravity of phones that send no totalacceleration",
    )
    phone_host: str = Field(
        default="0.0.0.0", description="Address the phone page and push endpoint listen on"
    )
    phone_https_port: int = Field(
        default=8765, ge=0, le=65535, description="HTTPS port: phone page, WebSocket, push (0 off)"
    )
    phone_http_port: int = Field(
        default=8766, ge=0, le=65535, description="Plain HTTP port for Sensor Logger push (0 off)"
    )
    phone_public_host: str | None = Field(
        default=None, description="Name or address phones reach this machine by (default: guess)"
    )
    phone_dir: Path = Field(
        default=Path("data/phone"), description="Where the generated token and certificate live"
    )
    phone_cert: Path | None = Field(default=None, description="TLS certificate (PEM) to use")
    phone_key: Path | None = Field(default=None, description="Its private key (PEM)")
    phone_token: str | None = Field(
        default=None, description="Token phones must send (default: generated in --phone-dir)"
    )
    max_phones: int = Field(default=500, ge=1, le=10_000, description="Most phones served at once")
    phone_max_bytes: int = Field(
        default=1 << 20, ge=1024, le=16 << 20, description="Largest phone message (bytes)"
    )
    phone_rate_limit: float = Field(
        default=20.0, gt=0, le=1000, description="Messages per second per phone (bursts of 2x)"
    )
    phone_reorder_seconds: float = Field(
        default=2.0, ge=0, le=60, description="How long a batch waits for an earlier one (s)"
    )
    phone_idle_timeout: float = Field(
        default=120.0, gt=0, description="Forget a phone silent this long (s)"
    )

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

    @field_validator("sensor_logger_topic")
    @classmethod
    def _sl_topic(cls, value: str) -> str:
        return topics.validate_root(value)

    @field_validator("sensor_logger_path")
    @classmethod
    def _sl_path(cls, value: str) -> str:
        if not _PATH.fullmatch(value):
            raise ValueError(f"path {value!r} must be /-separated [A-Za-z0-9_-] levels")
        return value

    @field_validator("phone_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and not _TOKEN.fullmatch(value):
            raise ValueError("the phone token must be 16-128 of [A-Za-z0-9_-]")
        return value

    @field_validator("device_map")
    @classmethod
    def _map(cls, value: list[str]) -> list[str]:
        parse_device_map(value)
        return value

    def ble_configs(self) -> list[BleDeviceConfig]:
        """The ``--ble-devices`` entries, parsed (already validated)."""
        return parse_device_specs(self.ble_devices)

    @property
    def phone_loopback(self) -> bool:
        """True when the phone servers are reachable from this machine only."""
        return self.phone_host in LOOPBACK

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
    if s.source == "phone" and (s.phone_cert is None) != (s.phone_key is None):
        return "--phone-cert and --phone-key go together"
    if s.source == "phone" and s.max_phones > s.max_devices:
        return f"--max-phones {s.max_phones} is more than --max-devices {s.max_devices}"
    wearables = len(s.ble_devices) if s.source == "ble" and s.ble_devices else s.devices
    if s.source not in ("replay", "phone") and wearables > s.max_devices:
        return f"{wearables} wearables are more than --max-devices {s.max_devices}"
    return None
