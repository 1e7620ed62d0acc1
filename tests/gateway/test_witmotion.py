"""``format=witmotion``: the WT901BLE packet against vectors worked out from the vendor's document.

Each vector is written by hand from WitMotion's WT901BLECL datasheet (v20-0707,
6.1.1): ``0x55 0x61``, then nine little-endian int16: acceleration = count /
32768 x 16 g, angular rate = count / 32768 x 2000 deg/s, angle = count / 32768 x
180 deg (the same formulas as the vendor's SDK, WITMOTION/WitBluetooth_BWT901BLE5_0).
Then the whole BLE path on the virtual backend: a simulated WitMotion
advertising on the vendor's service UUID, found, connected, streamed and
published as frames with the profile's channels and units.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from imu_har.protocol.codec import decode_frame
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import DeviceStatus
from imu_har.runtime.client import Collector
from services.ble_gateway import packets, profiles
from services.ble_gateway.app import GatewaySettings, build
from services.ble_gateway.ble import BleSource
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.profiles import witmotion
from services.ble_gateway.specs import parse_device_spec
from services.ble_gateway.virtual import (
    VirtualAir,
    VirtualBleakClient,
    VirtualBleakScanner,
    VirtualPeripheral,
)

# (name, hex, decoded values: acc g, gyro deg/s, angles deg)
VECTORS = [
    (
        # flat and still: az = 2048 counts = 2048 / 32768 x 16 = 1 g; everything else 0
        "flat_at_rest",
        "5561000000000008000000000000000000000000",
        [0, 0, 1, 0, 0, 0, 0, 0, 0],
    ),
    (
        # ax -1024 (fc00) = -0.5 g, ay 512 = 0.25 g, az 1664 (0680) = 0.8125 g;
        # gx 4096 = 250 deg/s, gy -16384 (c000) = -1000 deg/s, gz 32767 = 1999.939 deg/s;
        # roll 16384 = 90 deg, pitch -8192 (e000) = -45 deg, yaw -32768 (8000) = -180 deg
        "tilted_and_turning",
        "556100fc00028006001000c0ff7f004000e00080",
        [-0.5, 0.25, 0.8125, 250, -1000, 32767 * 2000 / 32768, 90, -45, -180],
    ),
]


@pytest.mark.parametrize(("name", "hexed", "values"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vendor_vectors_decode(name: str, hexed: str, values: list[float]) -> None:
    packet = packets.decode("witmotion", bytes.fromhex(hexed))
    assert packet.samples.shape == (1, 9)
    np.testing.assert_allclose(packet.samples[0], values, rtol=1e-6, atol=1e-6)
    assert packet.seq is None and packet.device_time_ms is None and packet.rate is None


def test_a_notification_may_hold_several_packets() -> None:
    data = bytes.fromhex(VECTORS[0][1] + VECTORS[1][1])
    packet = packets.decode("witmotion", data)
    np.testing.assert_allclose(packet.samples, [VECTORS[0][2], VECTORS[1][2]], atol=1e-6)


@pytest.mark.parametrize(
    ("hexed", "reason"),
    [
        (VECTORS[0][1][:-2], "truncated"),  # 19 bytes
        (VECTORS[0][1] + "00", "trailing_bytes"),  # 21 bytes
        ("5571" + VECTORS[0][1][4:], "bad_kind"),  # a register reply (magnetic field), not data
        ("aa61" + VECTORS[0][1][4:], "bad_kind"),  # no 0x55 header
        (VECTORS[0][1] + "5551" + VECTORS[0][1][4:], "bad_kind"),  # second packet broken
    ],
)
def test_bad_notifications_are_refused(hexed: str, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        packets.decode("witmotion", bytes.fromhex(hexed))
    assert info.value.reason == reason


def test_the_simulator_encoding_round_trips_within_one_count() -> None:
    rng = np.random.default_rng(3)
    samples = np.concatenate(
        [rng.normal(0, 2, (50, 3)), rng.normal(0, 300, (50, 3)), rng.normal(0, 40, (50, 3))],
        axis=1,
    )
    decoded = witmotion.decode(witmotion.encode(samples, 0, 0, 50.0)).samples
    np.testing.assert_allclose(decoded[:, :6], samples[:, :6], atol=2000 / 32768)
    np.testing.assert_allclose(decoded[:, 6:], witmotion.angles(samples), atol=180 / 32768)


def test_the_profile_declares_layout_and_uuids() -> None:
    profile = profiles.get("witmotion")
    assert profile.channels[-3:] == ("angle_x", "angle_y", "angle_z")
    assert profile.units == ("g",) * 3 + ("deg/s",) * 3 + ("deg",) * 3
    assert not profile.default_layout
    config = parse_device_spec("id=wit-1;name=WT901BLE68;format=witmotion;rate=10")
    assert config.char_uuid == witmotion.NOTIFY_UUID  # the format's characteristic by default
    with pytest.raises(ValueError, match="format must be one of"):
        parse_device_spec("id=wit-1;name=WT901BLE68;format=witmotion2")


def test_a_virtual_witmotion_streams_through_the_ble_source() -> None:
    peripheral = VirtualPeripheral(
        "F0:00:00:00:0A:01",
        "WT901BLE68",
        fmt="witmotion",
        rate=50.0,
        seed=4,
        service_uuid=witmotion.SERVICE_UUID,
        char_uuid=witmotion.NOTIFY_UUID,
    )
    air = VirtualAir([peripheral])
    settings = GatewaySettings(status_interval=0.5, scan_timeout=0.5, backoff_max=1.0)
    sent: list[tuple[str, bytes, int, bool]] = []
    core = GatewayCore(lambda *m: sent.append(m), settings)
    config = parse_device_spec("id=wit-1;name=WT901BLE68;format=witmotion;rate=50")
    source = BleSource(
        core,
        [config],
        lambda device, data, t: core.on_packet(device, data, t),
        settings,
        backend_kwargs={"backend": VirtualBleakClient, "air": air},
        scanner_kwargs={"backend": VirtualBleakScanner, "air": air},
    )

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(source.run(stop))
        deadline = asyncio.get_running_loop().time() + 10
        while core.links["wit-1"].frames < 20:
            assert asyncio.get_running_loop().time() < deadline, "no WitMotion frames"
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 10)
        air.close()

    asyncio.run(scenario())
    frames = [decode_frame(p) for t, p, _q, _r in sent if t == "har/wit-1/imu"]
    assert len(frames) >= 20
    assert all(f.channels == witmotion.CHANNELS and f.units == witmotion.UNITS for f in frames)
    assert all(f.samples.shape == (1, 9) and f.rate == 50.0 for f in frames)
    assert all(f.device_time is None for f in frames)  # no time in the packet: receive time
    acc = np.concatenate([f.samples[:, :3] for f in frames])
    assert 0.3 < float(np.median(np.linalg.norm(acc, axis=1))) < 3.0  # about 1 g, in g
    statuses = [DeviceStatus.from_payload(p) for t, p, _q, _r in sent if t == "har/wit-1/status"]
    assert statuses[-1].channels == list(witmotion.CHANNELS)
    assert core.links["wit-1"].decode_errors == 0


@pytest.mark.broker
def test_witmotion_over_the_service_on_the_virtual_backend(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    frames = Collector(mqtt_client, "har/wit-2/imu")
    settings = GatewaySettings(
        mqtt_port=broker.port,
        source="ble",
        ble_backend="virtual",
        ble_devices=["id=wit-2;name=WT901BLE68;format=witmotion;rate=20"],
        scan_timeout=0.5,
    )
    running = run_service(*build(settings))
    frames.wait_for(predicate=lambda ms: len(ms) >= 5, timeout=15)
    running.stop()
    got = [decode_frame(bytes(m.payload)) for m in frames.messages]
    assert {f.channels for f in got} == {witmotion.CHANNELS}
    assert {f.rate for f in got} == {20.0}
