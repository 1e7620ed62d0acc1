"""The BLE source through bleak's real client/scanner API, on the virtual peripheral backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner

from imu_har.protocol.codec import decode_frame
from services.ble_gateway import packets
from services.ble_gateway.ble import BleSource
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.settings import GatewaySettings
from services.ble_gateway.specs import BleDeviceConfig, parse_device_spec
from services.ble_gateway.virtual import (
    IMU_CHAR_UUID,
    SERVICE_UUID,
    VirtualAir,
    VirtualBleakClient,
    VirtualBleakScanner,
    VirtualPeripheral,
)

pytestmark = pytest.mark.timeout(60)


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_bleak_api_scan_connect_notify_disconnect_reconnect() -> None:
    async def scenario() -> None:
        air = VirtualAir([VirtualPeripheral("F0:00:00:00:00:01", "HAR-Nano-1", seed=1)])
        kwargs: dict[str, Any] = {"backend": VirtualBleakScanner, "air": air}
        device = await BleakScanner.find_device_by_name("HAR-Nano-1", timeout=2.0, **kwargs)
        assert device is not None and device.address == "F0:00:00:00:00:01"
        missing = await BleakScanner.find_device_by_address("F0:00:00:00:00:99", 0.3, **kwargs)
        assert missing is None
        dropped = asyncio.Event()
        client = BleakClient(device, lambda _c: dropped.set(), backend=VirtualBleakClient, air=air)
        received: list[bytearray] = []
        await client.connect()
        assert client.is_connected and client.mtu_size == 247
        await client.start_notify(IMU_CHAR_UUID, lambda _ch, data: received.append(data))
        await _until(lambda: len(received) >= 2)
        packet = packets.decode_batched(received[0])
        assert packet.samples.shape == (13, 9)
        air.find(device.address).drop()  # type: ignore[union-attr]
        await asyncio.wait_for(dropped.wait(), 2.0)
        assert not client.is_connected
        await client.connect()  # the peripheral is back: reconnect and notify again
        count = len(received)
        await client.start_notify(IMU_CHAR_UUID, lambda _ch, data: received.append(data))
        await _until(lambda: len(received) > count)
        await client.disconnect()
        air.close()

    asyncio.run(scenario())


def _source(
    air: VirtualAir, configs: list[BleDeviceConfig], silence: float = 5.0
) -> tuple[GatewayCore, BleSource, list[tuple[str, bytes, int, bool]]]:
    sent: list[tuple[str, bytes, int, bool]] = []
    settings = GatewaySettings(
        status_interval=0.5, scan_timeout=0.5, backoff_max=1.0, silence_timeout=silence
    )
    core = GatewayCore(lambda *m: sent.append(m), settings)
    source = BleSource(
        core,
        configs,
        lambda device, data, t: core.on_packet(device, data, t),
        settings,
        backend_kwargs={"backend": VirtualBleakClient, "air": air},
        scanner_kwargs={"backend": VirtualBleakScanner, "air": air},
    )
    return core, source, sent


def _run(source: BleSource, body: Callable[[], Awaitable[None]]) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(source.run(stop))
        try:
            await body()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_two_devices_reconnect_after_drop_without_duplicates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrist = VirtualPeripheral("F0:00:00:00:00:01", "HAR-Nano-1", seed=1, start_seq=65530)
    chest = VirtualPeripheral("F0:00:00:00:00:02", "HAR-Nano-2", seed=2, fmt=packets.LEGACY)
    wrist.leak_subscribers = True  # a stack that keeps the old callback after reconnecting
    air = VirtualAir([wrist, chest])
    configs = [
        parse_device_spec("id=wrist;address=f0:00:00:00:00:01"),
        parse_device_spec({"id": "chest", "name": "HAR-Nano-2", "format": "legacy"}),
    ]
    core, source, _sent = _source(air, configs)
    links = core.links

    async def body() -> None:
        await _until(lambda: links["wrist"].frames >= 10 and links["chest"].frames >= 20)
        assert links["wrist"].state == links["chest"].state == "streaming"
        assert links["wrist"].rssi == -60 and links["wrist"].address == "F0:00:00:00:00:01"
        chest_before = links["chest"].frames
        wrist.drop()
        await _until(lambda: links["wrist"].state == "disconnected", 3.0)
        await _until(lambda: wrist.connections == 2 and links["wrist"].state == "streaming")
        frames = links["wrist"].frames
        await _until(lambda: links["wrist"].frames >= frames + 5)
        assert links["chest"].frames > chest_before + 20  # the other device kept streaming

    _run(source, body)
    assert source.stale_notifications > 0  # the leaked callback fired and was ignored
    assert links["wrist"].seq.duplicates == 0
    assert links["wrist"].seq.lost == 0  # sequence wrapped from 65535 to 0 without a gap
    assert links["wrist"].decode_errors == 0 and links["chest"].decode_errors == 0
    air.close()


def test_bad_notifications_silence_and_missing_device(caplog: pytest.LogCaptureFixture) -> None:
    good = VirtualPeripheral("F0:00:00:00:00:01", "HAR-Nano-1", seed=1)
    flaky = VirtualPeripheral("F0:00:00:00:00:02", "HAR-Nano-2", seed=2)
    air = VirtualAir([good, flaky])
    configs = [
        BleDeviceConfig("good", address=good.address),
        BleDeviceConfig("flaky", name="HAR-Nano-2", service_uuid=SERVICE_UUID),
        BleDeviceConfig("ghost", address="F0:00:00:00:00:99"),
    ]
    core, source, sent = _source(air, configs, silence=0.4)
    links = core.links
    caplog.set_level(logging.INFO)

    async def body() -> None:
        await _until(lambda: links["flaky"].frames >= 3 and links["good"].frames >= 3)
        valid = flaky.next_packet()
        for bad in (b"", valid[:5], valid + b"\x00\x01", b"\xff" * 40, b"\x01\x00" * 14):
            flaky.notify(bad)
        await _until(lambda: links["flaky"].decode_errors == 5)
        assert "bad packet" in (links["flaky"].error or "")
        flaky.silent = True
        await _until(lambda: "no data" in (links["flaky"].error or ""), 3.0)
        await _until(lambda: flaky.connections >= 2, 5.0)  # still silent: reconnects
        flaky.silent = False
        await _until(lambda: links["flaky"].state == "streaming", 5.0)
        await _until(lambda: "not found" in (links["ghost"].error or ""), 5.0)
        frames = links["good"].frames
        await _until(lambda: links["good"].frames > frames + 3)

    _run(source, body)
    assert links["ghost"].state == "disconnected" and links["ghost"].frames == 0
    assert links["good"].decode_errors == 0
    # One frame per notification, holding that notification's 13 samples (MTU 247).
    good_frames = [decode_frame(p) for t, p, _q, _r in sent if t == "har/good/imu"]
    assert len(good_frames) == links["good"].frames == good.sent
    assert {len(f.samples) for f in good_frames} == {13}
    assert "F0:00:00:00:00:99 not found" in caplog.text
    assert "no data" in caplog.text
    ghost = [p for t, p, _q, retained in sent if t == "har/ghost/status" and retained]
    assert any(b'"state":"scanning"' in p and b"not found" in p for p in ghost)
    air.close()


def test_device_spec_parsing() -> None:
    config = parse_device_spec("id=wrist;address=AA:BB:CC:DD:EE:FF;format=legacy;rate=100")
    assert config.fmt == "legacy" and config.rate == 100.0 and config.address
    for bad in (
        "address=AA:BB",
        "id=x",
        "id=x;address=a;format=mp3",
        "id=x;colour=red",
        "nonsense",
    ):
        with pytest.raises(ValueError):
            parse_device_spec(bad)
