"""Which wearables to read, as the operator writes them: ``--ble-devices`` and ``--device-map``.

Pure and light (no bleak), so the settings can refuse a bad entry before
anything connects. Every check is a full match: a pattern ending in ``$`` also
matches before a trailing newline (issue 12), so none is used here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imu_har.protocol.codec import MAX_RATE_HZ
from imu_har.protocol.topics import validate_device_id
from services.ble_gateway import packets, profiles

if TYPE_CHECKING:
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

MAX_NAME_BYTES = 248  # the longest BLE local name (Core spec, Device Name characteristic)
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHORT_UUID = re.compile(r"[0-9a-f]{4}|[0-9a-f]{8}")
BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"  # the Bluetooth base UUID after the first group
ID_KEYS = ("id", "device")
TEXT_KEYS = ("address", "name", "service", "service_uuid", "char", "char_uuid", "format", "fmt")
KEYS = frozenset({*ID_KEYS, *TEXT_KEYS, "rate"})


@dataclass(frozen=True)
class BleDeviceConfig:
    """How to find one wearable and read it; at least one of address, name, service_uuid.

    ``rate`` is the sample rate of packets that announce none (legacy,
    witmotion); ``None`` means the gateway's ``--rate``. ``char_uuid`` defaults
    to the format's notify characteristic.
    """

    device: str
    address: str | None = None
    name: str | None = None
    service_uuid: str | None = None
    char_uuid: str = packets.IMU_CHAR_UUID
    fmt: str = packets.BATCHED
    rate: float | None = None

    def matches(self, device: BLEDevice, adv: AdvertisementData) -> bool:
        """Whether a scanned device is this wearable."""
        if self.address and device.address.lower() != self.address.lower():
            return False
        if self.name and self.name not in (adv.local_name, device.name):
            return False
        uuids = [u.lower() for u in adv.service_uuids]
        return not (self.service_uuid and self.service_uuid.lower() not in uuids)


def parse_device_spec(spec: str | dict[str, Any]) -> BleDeviceConfig:
    """``"id=wrist;address=AA:BB:..;format=legacy"`` (or a dict) -> :class:`BleDeviceConfig`.

    Raises ``ValueError`` naming the entry and what is wrong with it.
    """
    if isinstance(spec, str):
        items = [part.split("=", 1) for part in spec.split(";") if part.strip()]
        if any(len(item) != 2 for item in items):
            raise ValueError(f"device spec {spec!r} must be key=value pairs joined by ';'")
        spec = {k.strip(): v.strip() for k, v in items}
    unknown = set(spec) - KEYS
    if unknown:
        raise ValueError(f"unknown device setting(s) {sorted(map(str, unknown))}")
    device = spec.get("id") or spec.get("device")
    if not device:
        raise ValueError(f"device spec {spec!r} needs an id")
    device = validate_device_id(str(device))
    text = {key: _text(device, key, spec.get(key)) for key in TEXT_KEYS}
    fmt = text["format"] or text["fmt"] or packets.BATCHED
    if fmt not in profiles.PROFILES:
        raise ValueError(f"device {device!r}: format must be one of {packets.FORMATS}")
    config = BleDeviceConfig(
        device=device,
        address=_address(device, text["address"]),
        name=_name(device, text["name"]),
        service_uuid=_uuid(device, "service", text["service"] or text["service_uuid"]),
        char_uuid=_uuid(device, "char", text["char"] or text["char_uuid"])
        or profiles.get(fmt).char_uuid,
        fmt=fmt,
        rate=_rate(device, spec.get("rate")),
    )
    if not (config.address or config.name or config.service_uuid):
        raise ValueError(f"device {device!r} needs an address, a name or a service uuid")
    return config


def parse_device_specs(specs: Iterable[str | dict[str, Any]]) -> list[BleDeviceConfig]:
    """Every entry parsed; a device id or address configured twice is refused."""
    configs = [parse_device_spec(spec) for spec in specs]
    _unique("device id", [c.device for c in configs])
    _unique("address", [c.address.upper() for c in configs if c.address])
    return configs


def parse_device_map(items: Iterable[str]) -> dict[str, str]:
    """``["old=new", ...]`` -> ``{old: new}``; both sides must be valid device ids."""
    mapping: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep:
            raise ValueError(f"device map entry {item!r} must be old=new")
        for side in (old, new):
            validate_device_id(side)
        if old in mapping:
            raise ValueError(f"device map renames {old!r} twice")
        mapping[old] = new
    return mapping


def _unique(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is configured twice")
        seen.add(value)


def _text(device: str, key: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"device {device!r}: {key} must be a string, not {value!r}")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError(f"device {device!r}: {key} {value!r} contains control characters")
    return value


def _address(device: str, value: str | None) -> str | None:
    if value is None or _MAC.fullmatch(value) or _UUID.fullmatch(value.lower()):
        return value
    raise ValueError(
        f"device {device!r}: address {value!r} is neither AA:BB:CC:DD:EE:FF nor a macOS UUID"
    )


def _name(device: str, value: str | None) -> str | None:
    if value is None:
        return None
    if any(ch in value for ch in "*?"):
        raise ValueError(
            f"device {device!r}: name {value!r} has a wildcard; names are matched exactly"
        )
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"device {device!r}: name longer than {MAX_NAME_BYTES} bytes")
    return value


def _uuid(device: str, key: str, value: str | None) -> str | None:
    """A full lower-case UUID; 16- and 32-bit short forms are expanded with the base UUID."""
    if value is None:
        return None
    lowered = value.lower()
    if _UUID.fullmatch(lowered):
        return lowered
    if _SHORT_UUID.fullmatch(lowered):
        return lowered.rjust(8, "0") + BASE_UUID_TAIL
    raise ValueError(f"device {device!r}: {key} {value!r} is not a UUID (or 16/32-bit short form)")


def _rate(device: str, value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"device {device!r}: rate {value!r} is not a number") from None
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE_HZ):
        raise ValueError(f"device {device!r}: rate {value!r} is outside (0, {MAX_RATE_HZ:g}]")
    return rate
