"""BLE notification packet formats (docs/protocol.md, "BLE packet formats"): bytes <-> samples.

Two formats, chosen per device:

* ``legacy``: one sample, nine little-endian int16 ``ax ay az gx gy gz mx my mz``
  in 18 bytes (or zero-padded to 32): acc milli-g, gyro centi-deg/s, mag milli-gauss.
  No sequence number or timestamp: the gateway stamps the receive time.
* ``batched`` (ours): a 10-byte header (version, sample count, uint16 sequence
  number, uint32 device time in ms of the first sample, uint16 rate in 0.1 Hz)
  then N samples of nine int16: acc milli-g, gyro 0.1 deg/s, mag 0.01 uT, sized
  to fit the negotiated ATT MTU (payload = MTU - 3).

Pure module: no BLE, no MQTT. Bad packets raise :class:`PayloadError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from imu_har.protocol.errors import PayloadError

# GATT service and notify characteristic of our firmware (firmware/README.md).
SERVICE_UUID = "5a4e0001-6a3c-4b7e-9c1d-2f8e7a4b0001"
IMU_CHAR_UUID = "5a4e0002-6a3c-4b7e-9c1d-2f8e7a4b0001"

LEGACY = "legacy"
BATCHED = "batched"
FORMATS = (LEGACY, BATCHED)

BATCH_VERSION = 1
BATCH_HEADER = struct.Struct("<BBHIH")  # version, count, seq, device time ms, rate 0.1 Hz
SAMPLE_BYTES = 18
LEGACY_SIZES = (18, 32)
ATT_OVERHEAD = 3  # opcode + attribute handle in a notification
# Units per LSB, converting to g, deg/s, uT.
LEGACY_SCALE = np.array([1e-3] * 3 + [1e-2] * 3 + [0.1] * 3, dtype=np.float64)
BATCH_SCALE = np.array([1e-3] * 3 + [0.1] * 3 + [0.01] * 3, dtype=np.float64)
_I16 = np.dtype("<i2")


@dataclass(frozen=True)
class Packet:
    """What one notification carried: samples (n, 9) float32 in g, deg/s, uT."""

    samples: np.ndarray
    seq: int | None = None  # uint16 packet sequence number (batched only)
    device_time_ms: int | None = None  # uint32 device clock of the first sample
    rate: float | None = None  # sample rate announced by the device (Hz)


def decode(fmt: str, data: bytes | bytearray | memoryview) -> Packet:
    """Decode one notification in format ``fmt`` or raise :class:`PayloadError`."""
    if fmt == BATCHED:
        return decode_batched(data)
    if fmt == LEGACY:
        return decode_legacy(data)
    raise ValueError(f"unknown packet format {fmt!r}; known: {', '.join(FORMATS)}")


def decode_legacy(data: bytes | bytearray | memoryview) -> Packet:
    """Decode an 18-byte (or 32-byte padded) legacy sample."""
    if len(data) not in LEGACY_SIZES:
        reason = "truncated" if len(data) < LEGACY_SIZES[0] else "trailing_bytes"
        raise PayloadError(reason, f"legacy packet of {len(data)} bytes, expected 18 or 32")
    raw = np.frombuffer(bytes(data[:SAMPLE_BYTES]), dtype=_I16)
    return Packet((raw * LEGACY_SCALE).astype(np.float32).reshape(1, 9))


def decode_batched(data: bytes | bytearray | memoryview) -> Packet:
    """Decode a batched packet: header, then ``count`` samples, nothing after."""
    if len(data) < BATCH_HEADER.size + SAMPLE_BYTES:
        raise PayloadError("truncated", f"batched packet of {len(data)} bytes is too short")
    version, count, seq, time_ms, rate_dhz = BATCH_HEADER.unpack_from(data, 0)
    if version != BATCH_VERSION:
        raise PayloadError("bad_version", f"batched packet version {version}, expected 1")
    if count == 0:
        raise PayloadError("bad_shape", "batched packet announces 0 samples")
    expected = BATCH_HEADER.size + count * SAMPLE_BYTES
    if len(data) != expected:
        reason = "truncated" if len(data) < expected else "trailing_bytes"
        raise PayloadError(reason, f"{count} samples need {expected} bytes, got {len(data)}")
    raw = np.frombuffer(bytes(data), dtype=_I16, offset=BATCH_HEADER.size).reshape(count, 9)
    samples = (raw * BATCH_SCALE).astype(np.float32)
    return Packet(samples, seq, time_ms, rate_dhz / 10.0 if rate_dhz else None)


def quantize(samples: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Samples in default units -> int16 counts (rounded, saturated at the int16 range)."""
    counts = np.rint(np.asarray(samples, dtype=np.float64) / scale)
    return np.clip(counts, -32768, 32767).astype(_I16)


def encode_legacy(sample: np.ndarray, padded: bool = False) -> bytes:
    """One sample (9 values, default units) as a legacy packet."""
    raw = quantize(np.asarray(sample).reshape(9), LEGACY_SCALE).tobytes()
    return raw + bytes(32 - SAMPLE_BYTES) if padded else raw


def encode_batched(samples: np.ndarray, seq: int, time_ms: int, rate: float) -> bytes:
    """Samples (n, 9) in default units as one batched packet."""
    samples = np.asarray(samples).reshape(-1, 9)
    if not 1 <= len(samples) <= 255:
        raise ValueError(f"a batched packet holds 1..255 samples, not {len(samples)}")
    head = BATCH_HEADER.pack(
        BATCH_VERSION, len(samples), seq & 0xFFFF, time_ms & 0xFFFFFFFF, round(rate * 10)
    )
    return head + quantize(samples, BATCH_SCALE).tobytes()


def encode_batched_many(
    samples: np.ndarray, seqs: np.ndarray, times_ms: np.ndarray, rate: float
) -> list[bytes]:
    """One batched packet per device at once: samples (devices, n, 9) -> list of bytes."""
    d, n, _ = samples.shape
    if not 1 <= n <= 255:
        raise ValueError(f"a batched packet holds 1..255 samples, not {n}")
    head = np.zeros(d, dtype=[("v", "u1"), ("n", "u1"), ("s", "<u2"), ("t", "<u4"), ("r", "<u2")])
    head["v"], head["n"], head["r"] = BATCH_VERSION, n, round(rate * 10)
    head["s"] = np.asarray(seqs) & 0xFFFF
    head["t"] = np.asarray(times_ms, dtype=np.int64) & 0xFFFFFFFF
    body = quantize(samples, BATCH_SCALE).reshape(d, n * 9)
    rows = np.concatenate([head.view(np.uint8).reshape(d, -1), body.view(np.uint8)], axis=1)
    blob = rows.tobytes()
    size = rows.shape[1]
    return [blob[i * size : (i + 1) * size] for i in range(d)]


def samples_per_packet(mtu: int) -> int:
    """How many batched samples fit one notification at ATT MTU ``mtu``."""
    n = (mtu - ATT_OVERHEAD - BATCH_HEADER.size) // SAMPLE_BYTES
    if n < 1:
        need = ATT_OVERHEAD + BATCH_HEADER.size + SAMPLE_BYTES
        raise ValueError(f"ATT MTU {mtu} is too small for a batched packet (need >= {need})")
    return min(n, 255)


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
