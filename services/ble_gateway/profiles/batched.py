"""``format=batched`` (ours, the default): a 10-byte header, then N samples of nine int16.

Header: version, sample count, uint16 sequence number, uint32 device time in ms
of the first sample, uint16 rate in 0.1 Hz; samples: acc milli-g, gyro 0.1 deg/s,
mag 0.01 uT, sized to fit the negotiated ATT MTU (payload = MTU - 3).
Encoder on the device: firmware/har_imu/har_packet.h; both are tested against
firmware/test_vectors.json.
"""

from __future__ import annotations

import struct

import numpy as np

from imu_har.protocol.errors import PayloadError
from services.ble_gateway.profiles.base import _I16, Data, Packet, PacketFormat, quantize
from services.ble_gateway.profiles.legacy import IMU_CHAR_UUID, SAMPLE_BYTES, SERVICE_UUID

VERSION = 1
HEADER = struct.Struct("<BBHIH")  # version, count, seq, device time ms, rate 0.1 Hz
ATT_OVERHEAD = 3  # opcode + attribute handle in a notification
SCALE = np.array([1e-3] * 3 + [0.1] * 3 + [0.01] * 3, dtype=np.float64)  # g, deg/s, uT per count


def decode(data: Data) -> Packet:
    """Decode a batched packet: header, then ``count`` samples, nothing after."""
    if len(data) < HEADER.size + SAMPLE_BYTES:
        raise PayloadError("truncated", f"batched packet of {len(data)} bytes is too short")
    version, count, seq, time_ms, rate_dhz = HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise PayloadError("bad_version", f"batched packet version {version}, expected 1")
    if count == 0:
        raise PayloadError("bad_shape", "batched packet announces 0 samples")
    expected = HEADER.size + count * SAMPLE_BYTES
    if len(data) != expected:
        reason = "truncated" if len(data) < expected else "trailing_bytes"
        raise PayloadError(reason, f"{count} samples need {expected} bytes, got {len(data)}")
    raw = np.frombuffer(bytes(data), dtype=_I16, offset=HEADER.size).reshape(count, 9)
    samples = (raw * SCALE).astype(np.float32)
    return Packet(samples, seq, time_ms, rate_dhz / 10.0 if rate_dhz else None)


def encode(samples: np.ndarray, seq: int, time_ms: int, rate: float) -> bytes:
    """Samples (n, 9) in default units as one batched packet."""
    samples = np.asarray(samples).reshape(-1, 9)
    if not 1 <= len(samples) <= 255:
        raise ValueError(f"a batched packet holds 1..255 samples, not {len(samples)}")
    head = HEADER.pack(VERSION, len(samples), seq & 0xFFFF, time_ms & 0xFFFFFFFF, round(rate * 10))
    return head + quantize(samples, SCALE).tobytes()


def encode_many(
    samples: np.ndarray, seqs: np.ndarray, times_ms: np.ndarray, rate: float
) -> list[bytes]:
    """One batched packet per device at once: samples (devices, n, 9) -> list of bytes."""
    d, n, _ = samples.shape
    if not 1 <= n <= 255:
        raise ValueError(f"a batched packet holds 1..255 samples, not {n}")
    head = np.zeros(d, dtype=[("v", "u1"), ("n", "u1"), ("s", "<u2"), ("t", "<u4"), ("r", "<u2")])
    head["v"], head["n"], head["r"] = VERSION, n, round(rate * 10)
    head["s"] = np.asarray(seqs) & 0xFFFF
    head["t"] = np.asarray(times_ms, dtype=np.int64) & 0xFFFFFFFF
    body = quantize(samples, SCALE).reshape(d, n * 9)
    rows = np.concatenate([head.view(np.uint8).reshape(d, -1), body.view(np.uint8)], axis=1)
    blob = rows.tobytes()
    size = rows.shape[1]
    return [blob[i * size : (i + 1) * size] for i in range(d)]


def samples_per_packet(mtu: int) -> int:
    """How many batched samples fit one notification at ATT MTU ``mtu``."""
    n = (mtu - ATT_OVERHEAD - HEADER.size) // SAMPLE_BYTES
    if n < 1:
        need = ATT_OVERHEAD + HEADER.size + SAMPLE_BYTES
        raise ValueError(f"ATT MTU {mtu} is too small for a batched packet (need >= {need})")
    return min(n, 255)


PROFILE = PacketFormat(
    name="batched",
    about="our firmware: sequence number, device time and rate, as many samples as fit the MTU",
    decode=decode,
    encode=encode,
    per_packet=samples_per_packet,
    service_uuid=SERVICE_UUID,
    char_uuid=IMU_CHAR_UUID,
)
