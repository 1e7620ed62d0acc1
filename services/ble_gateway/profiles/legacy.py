"""``format=legacy``: one sample of nine int16 per notification, no sequence number, no time.

18 bytes (or 32, zero-padded): ``ax ay az`` milli-g, ``gx gy gz`` centi-deg/s,
``mx my mz`` milli-gauss (0.1 uT), little-endian. The gateway stamps the
receive time (docs/protocol.md, "BLE packet formats").
"""

from __future__ import annotations

import numpy as np

from imu_har.protocol.errors import PayloadError
from services.ble_gateway.profiles.base import _I16, Data, Packet, PacketFormat, one, quantize

# GATT service and notify characteristic of our firmware (firmware/README.md), as batched.
SERVICE_UUID = "5a4e0001-6a3c-4b7e-9c1d-2f8e7a4b0001"
IMU_CHAR_UUID = "5a4e0002-6a3c-4b7e-9c1d-2f8e7a4b0001"
SAMPLE_BYTES = 18
SIZES = (18, 32)
SCALE = np.array([1e-3] * 3 + [1e-2] * 3 + [0.1] * 3, dtype=np.float64)  # g, deg/s, uT per count


def decode(data: Data) -> Packet:
    """Decode an 18-byte (or 32-byte padded) legacy sample."""
    if len(data) not in SIZES:
        reason = "truncated" if len(data) < SIZES[0] else "trailing_bytes"
        raise PayloadError(reason, f"legacy packet of {len(data)} bytes, expected 18 or 32")
    raw = np.frombuffer(bytes(data[:SAMPLE_BYTES]), dtype=_I16)
    return Packet((raw * SCALE).astype(np.float32).reshape(1, 9))


def encode_sample(sample: np.ndarray, padded: bool = False) -> bytes:
    """One sample (9 values, default units) as a legacy packet."""
    raw = quantize(np.asarray(sample).reshape(9), SCALE).tobytes()
    return raw + bytes(32 - SAMPLE_BYTES) if padded else raw


def encode(samples: np.ndarray, seq: int, time_ms: int, rate: float) -> bytes:
    """The first sample of ``samples`` as a legacy packet (the format has no seq or time)."""
    return encode_sample(np.asarray(samples).reshape(-1, 9)[0])


PROFILE = PacketFormat(
    name="legacy",
    about="one sample per notification (original Simblee packet)",
    decode=decode,
    encode=encode,
    per_packet=one,
    service_uuid=SERVICE_UUID,
    char_uuid=IMU_CHAR_UUID,
)
