"""``format=witmotion``: WitMotion WT901BLE / BWT901BLECL, an off-the-shelf BLE IMU, as sold.

Source: WitMotion's WT901BLECL datasheet (v20-0707), section 6.1.1 "Data Packet
(Default)", and the vendor's own SDK (github.com/WITMOTION/WitBluetooth_BWT901BLE5_0,
``Python/BWT901BLE5.0_python_sdk/device_model.py``). The module notifies, on
characteristic ``0000ffe4-...`` of service ``0000ffe5-...``, 20-byte packets
``0x55 0x61`` followed by nine little-endian int16 values:

====================  ========================  ================
acceleration x, y, z  count / 32768 x 16        g (range ±16 g)
angular rate x, y, z  count / 32768 x 2000      deg/s (±2000)
angle x, y, z         count / 32768 x 180       deg (roll, pitch, yaw)
====================  ========================  ================

The packet has no sequence number and no time: like ``legacy``, the gateway
stamps the receive time, and the rate is the device's ``rate=`` (the module's
output rate, 10 Hz out of the box, set with WitMotion's app). A notification
may hold several packets back to back (a multiple of 20 bytes). The magnetic
field is only sent on request (``0x55 0x71`` register replies) and is not read:
frames carry acceleration, angular rate and the module's own angles, so a model
trained on the default nine channels refuses them (``channel_mismatch``).
"""

from __future__ import annotations

import numpy as np

from imu_har.protocol.errors import PayloadError
from services.ble_gateway.profiles.base import _I16, Data, Packet, PacketFormat, one, quantize

SERVICE_UUID = "0000ffe5-0000-1000-8000-00805f9a34fb"
NOTIFY_UUID = "0000ffe4-0000-1000-8000-00805f9a34fb"
HEADER, FLAG = 0x55, 0x61
PACKET_BYTES = 20
SCALE = np.array([16 / 32768] * 3 + [2000 / 32768] * 3 + [180 / 32768] * 3, dtype=np.float64)
CHANNELS = (
    *("acc_x", "acc_y", "acc_z"),
    *("gyro_x", "gyro_y", "gyro_z"),
    *("angle_x", "angle_y", "angle_z"),
)
UNITS = ("g",) * 3 + ("deg/s",) * 3 + ("deg",) * 3


def decode(data: Data) -> Packet:
    """Decode one notification of one or more ``0x55 0x61`` packets."""
    size = len(data)
    if size < PACKET_BYTES:
        raise PayloadError("truncated", f"WitMotion notification of {size} bytes, expected 20")
    if size % PACKET_BYTES:
        raise PayloadError("trailing_bytes", f"WitMotion notification of {size} bytes (20 each)")
    raw = np.frombuffer(bytes(data), dtype=np.uint8).reshape(-1, PACKET_BYTES)
    bad = np.flatnonzero((raw[:, 0] != HEADER) | (raw[:, 1] != FLAG))
    if bad.size:
        head = bytes(raw[bad[0], :2]).hex()
        raise PayloadError("bad_kind", f"WitMotion packet starts {head}, expected 5561")
    counts = raw[:, 2:].copy().view(_I16)  # (n, 9)
    return Packet((counts * SCALE).astype(np.float32))


def angles(samples: np.ndarray) -> np.ndarray:
    """Roll, pitch and (tilt-compensated) yaw in degrees from acc and mag, for the simulator."""
    ax, ay, az, mx, my, mz = (samples[:, i].astype(np.float64) for i in (0, 1, 2, 6, 7, 8))
    roll = np.arctan2(ay, az)
    pitch = np.arctan2(-ax, np.hypot(ay, az))
    xh = mx * np.cos(pitch) + (my * np.sin(roll) + mz * np.cos(roll)) * np.sin(pitch)
    yh = my * np.cos(roll) - mz * np.sin(roll)
    return np.degrees(np.stack([roll, pitch, np.arctan2(-yh, xh)], axis=1))


def encode(samples: np.ndarray, seq: int, time_ms: int, rate: float) -> bytes:
    """Simulated samples (n, 9) in default units as n packets of one notification."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, 9)
    values = np.concatenate([samples[:, :6], angles(samples)], axis=1)
    counts = quantize(values, SCALE)
    head = np.tile(np.array([HEADER, FLAG], dtype=np.uint8), (len(samples), 1))
    return np.concatenate([head, counts.view(np.uint8).reshape(-1, 18)], axis=1).tobytes()


PROFILE = PacketFormat(
    name="witmotion",
    about="WitMotion WT901BLE/BWT901BLECL: acc ±16 g, gyro ±2000 deg/s, angles; 20-byte 0x55 0x61",
    decode=decode,
    encode=encode,
    per_packet=one,
    service_uuid=SERVICE_UUID,
    char_uuid=NOTIFY_UUID,
    channels=CHANNELS,
    units=UNITS,
)
