"""What every BLE packet format ("profile") declares: channels, units, decoder, encoder, UUIDs.

A profile is one small module with one :class:`PacketFormat` (``PROFILE``),
registered in :mod:`services.ble_gateway.profiles`. The gateway decodes each
notification of a device with its profile and publishes the samples as a raw
frame with the profile's channels and units; the virtual peripherals encode
simulated samples with it, so every format runs the whole BLE path in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imu_har.protocol.codec import DEFAULT_CHANNELS, DEFAULT_UNITS

Data = bytes | bytearray | memoryview
_I16 = np.dtype("<i2")


@dataclass(frozen=True)
class Packet:
    """What one notification carried: samples (n, channels) float32 in the profile's units."""

    samples: np.ndarray
    seq: int | None = None  # uint16 packet sequence number (batched only)
    device_time_ms: int | None = None  # uint32 device clock of the first sample
    rate: float | None = None  # sample rate announced by the device (Hz)


@dataclass(frozen=True)
class PacketFormat:
    """One wearable packet format.

    ``decode(data)`` turns one notification into a :class:`Packet` or raises
    :class:`~imu_har.protocol.errors.PayloadError`. ``encode(samples, seq,
    time_ms, rate)`` turns simulated samples, ``(n, 9)`` in the default layout
    (g, deg/s, uT), into one notification, and ``per_packet(mtu)`` says how many
    samples one notification holds: the virtual peripherals use both.
    """

    name: str
    about: str
    decode: Callable[[Data], Packet]
    encode: Callable[[np.ndarray, int, int, float], bytes]
    per_packet: Callable[[int], int]
    service_uuid: str
    char_uuid: str
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    units: tuple[str, ...] = DEFAULT_UNITS

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.units):
            raise ValueError(f"profile {self.name}: {len(self.channels)} channels, units differ")

    @property
    def default_layout(self) -> bool:
        """True when frames of this format carry the default nine channels."""
        return self.channels == DEFAULT_CHANNELS and self.units == DEFAULT_UNITS


def quantize(samples: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Samples in physical units -> int16 counts (rounded, saturated at the int16 range)."""
    counts = np.rint(np.asarray(samples, dtype=np.float64) / scale)
    return np.clip(counts, -32768, 32767).astype(_I16)


def one(mtu: int) -> int:
    """One sample per notification, whatever the MTU."""
    return 1
