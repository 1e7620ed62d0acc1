"""BLE packet formats, one small module each, in one registry (``format=`` of ``--ble-devices``).

A profile declares its channels and units, its decoder (notification ->
samples), an encoder for the virtual peripherals, and its default GATT service
and notify characteristic. A new wearable is a new module with a ``PROFILE``
and one entry in :data:`PROFILES`.
"""

from __future__ import annotations

from services.ble_gateway.profiles import batched, legacy, witmotion
from services.ble_gateway.profiles.base import Data, Packet, PacketFormat

PROFILES: dict[str, PacketFormat] = {
    p.name: p for p in (batched.PROFILE, legacy.PROFILE, witmotion.PROFILE)
}


def get(name: str) -> PacketFormat:
    """The profile called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown packet format {name!r}; known: {', '.join(PROFILES)}") from None


def decode(name: str, data: Data) -> Packet:
    """Decode one notification in format ``name`` or raise :class:`PayloadError`."""
    return get(name).decode(data)


__all__ = ["PROFILES", "Packet", "PacketFormat", "decode", "get"]
