"""BLE notification packets: the format registry's names, and per-device stream bookkeeping.

The formats themselves are profiles, one module each, in
:mod:`services.ble_gateway.profiles` (``batched``, ``legacy``, ``witmotion``;
docs/protocol.md, "BLE packet formats"). This module keeps the names the rest of
the gateway and the tests use (``decode(fmt, data)``, ``encode_batched`` ...)
and the per-device state that every sequence-numbered format needs: sequence
gaps with wrap-around (:class:`SequenceTracker`) and the device clock
unwrapped (:class:`ClockUnwrapper`).

Pure module: no BLE, no MQTT. Bad packets raise :class:`PayloadError`.
"""

from __future__ import annotations

import numpy as np

from services.ble_gateway.profiles import PROFILES, Packet, decode
from services.ble_gateway.profiles import batched as _batched
from services.ble_gateway.profiles import legacy as _legacy
from services.ble_gateway.profiles.base import quantize

# GATT service and notify characteristic of our firmware (firmware/README.md).
SERVICE_UUID = _legacy.SERVICE_UUID
IMU_CHAR_UUID = _legacy.IMU_CHAR_UUID

LEGACY = _legacy.PROFILE.name
BATCHED = _batched.PROFILE.name
WITMOTION = "witmotion"
FORMATS = tuple(PROFILES)

BATCH_VERSION = _batched.VERSION
BATCH_HEADER = _batched.HEADER
SAMPLE_BYTES = _legacy.SAMPLE_BYTES
LEGACY_SIZES = _legacy.SIZES
ATT_OVERHEAD = _batched.ATT_OVERHEAD
LEGACY_SCALE = _legacy.SCALE
BATCH_SCALE = _batched.SCALE

decode_legacy = _legacy.decode
decode_batched = _batched.decode
encode_batched = _batched.encode
encode_batched_many = _batched.encode_many
samples_per_packet = _batched.samples_per_packet


def encode_legacy(sample: np.ndarray, padded: bool = False) -> bytes:
    """One sample (9 values, default units) as a legacy packet."""
    return _legacy.encode_sample(sample, padded)


__all__ = [
    "BATCHED",
    "FORMATS",
    "IMU_CHAR_UUID",
    "LEGACY",
    "SERVICE_UUID",
    "WITMOTION",
    "ClockUnwrapper",
    "Packet",
    "SequenceTracker",
    "decode",
    "encode_batched",
    "encode_batched_many",
    "encode_legacy",
    "quantize",
    "samples_per_packet",
]


class SequenceTracker:
    """Counts packets lost from gaps in a wrapping uint16 sequence number."""

    def __init__(self, modulus: int = 1 << 16) -> None:
        self.modulus = modulus
        self.last: int | None = None
        self.lost = 0
        self.duplicates = 0
        self.restarts = 0

    def reset(self) -> None:
        """Forget the last number (after a reconnect the device may restart at 0)."""
        self.last = None

    def update(self, seq: int) -> str:
        """Account for ``seq``: returns ``first``, ``ok``, ``gap``, ``duplicate`` or ``restart``."""
        last, self.last = self.last, seq
        if last is None:
            return "first"
        diff = (seq - last - 1) % self.modulus
        if diff == 0:
            return "ok"
        if seq == last:
            self.duplicates += 1
            return "duplicate"
        if diff < self.modulus // 2:
            self.lost += diff
            return "gap"
        self.restarts += 1  # far behind: the device restarted its counter
        return "restart"


class ClockUnwrapper:
    """Device time in ms (uint32, wraps after 49.7 days) -> monotonic seconds."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.epochs = 0

    def reset(self) -> None:
        """Start over (the device may have rebooted)."""
        self.last, self.epochs = None, 0

    def seconds(self, time_ms: int) -> float:
        """Unwrapped device time in seconds."""
        if self.last is not None and time_ms < self.last and self.last - time_ms > 1 << 31:
            self.epochs += 1
        self.last = time_ms
        return (self.epochs * (1 << 32) + time_ms) / 1000.0
