"""A virtual BLE backend for bleak: simulated peripherals without radio hardware.

:class:`VirtualBleakScanner` and :class:`VirtualBleakClient` implement bleak's
backend interfaces (``BaseBleakScanner``/``BaseBleakClient``) and are plugged in
with ``BleakScanner(backend=..., air=air)`` / ``BleakClient(..., backend=..., air=air)``,
so the gateway's real bleak code path (scan, connect, start_notify, disconnect
callback, reconnect) runs unchanged. A :class:`VirtualAir` holds the
:class:`VirtualPeripheral` s that advertise; each peripheral notifies real
encoded packets from the wearable simulator and can be told to drop the link,
stop advertising, go silent or send arbitrary bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from imu_har.simulation import WearableSimulator
from services.ble_gateway import packets

logger = logging.getLogger(__name__)

# The UUIDs of our firmware (firmware/README.md).
SERVICE_UUID = "5a4e0001-6a3c-4b7e-9c1d-2f8e7a4b0001"
IMU_CHAR_UUID = "5a4e0002-6a3c-4b7e-9c1d-2f8e7a4b0001"


class VirtualPeripheral:
    """A simulated wearable: advertises, accepts one connection, notifies packets."""

    def __init__(
        self,
        address: str,
        name: str,
        *,
        fmt: str = packets.BATCHED,
        label: str = "Squat",
        rate: float = 50.0,
        mtu: int = 247,
        rssi: int = -60,
        seed: int = 0,
        service_uuid: str = SERVICE_UUID,
        char_uuid: str = IMU_CHAR_UUID,
        start_seq: int = 0,
    ) -> None:
        self.address, self.name, self.fmt, self.label = address, name, fmt, label
        self.rate, self.mtu, self.rssi = rate, mtu, rssi
        self.service_uuid, self.char_uuid = service_uuid, char_uuid
        self.advertising = True
        self.silent = False
        self.leak_subscribers = False  # emulate a stack that keeps old callbacks alive
        self.sim = WearableSimulator(rate=rate, seed=seed)
        self.seq = start_seq
        self.sent = 0
        self.connections = 0
        self._subscribers: list[NotifyCallback] = []
        self._client: VirtualBleakClient | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Whether a central is connected."""
        return self._client is not None

    def advertisement(self) -> AdvertisementData:
        """What a scan sees."""
        return AdvertisementData(self.name, {}, {}, [self.service_uuid], None, self.rssi, ())

    def attach(self, client: VirtualBleakClient) -> None:
        """A central connected."""
        if self._client is not None:
            raise BleakError(f"{self.address} is already connected")
        self._client = client
        self.connections += 1
        if not self.leak_subscribers:
            self._subscribers.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._stream())

    def detach(self) -> None:
        """The link is gone (either side)."""
        self._client = None
        if not self.leak_subscribers:
            self._subscribers.clear()

    def subscribe(self, callback: NotifyCallback) -> None:
        """The central enabled notifications."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: NotifyCallback | None = None) -> None:
        """The central disabled notifications."""
        if callback is None:
            self._subscribers.clear()
        elif callback in self._subscribers:
            self._subscribers.remove(callback)

    def drop(self) -> None:
        """The peripheral loses the link (out of range, battery): the central gets a callback."""
        client = self._client
        self.detach()
        if client is not None:
            client.lost()

    def notify(self, data: bytes) -> None:
        """Send one notification to every subscriber (also arbitrary bytes, for tests)."""
        for callback in list(self._subscribers):
            callback(bytearray(data))

    def next_packet(self) -> bytes:
        """The next real packet of the simulated wearable."""
        if self.fmt == packets.LEGACY:
            samples, _ = self.sim.next_samples(self.label, 1)
            return packets.encode_legacy(samples[0])
        n = packets.samples_per_packet(self.mtu)
        time_ms = round(self.sim.time * 1000)
        samples, _ = self.sim.next_samples(self.label, n)
        data = packets.encode_batched(samples, self.seq, time_ms, self.rate)
        self.seq = (self.seq + 1) & 0xFFFF
        return data

    async def _stream(self) -> None:
        n = 1 if self.fmt == packets.LEGACY else packets.samples_per_packet(self.mtu)
        while self._client is not None:
            await asyncio.sleep(n / self.rate)
            if self._client is not None and self._subscribers and not self.silent:
                self.notify(self.next_packet())
                self.sent += 1

    def close(self) -> None:
        """Stop streaming."""
        self.drop()
        if self._task is not None:
            self._task.cancel()


class VirtualAir:
    """The radio environment: which virtual peripherals exist."""

    def __init__(self, peripherals: list[VirtualPeripheral] | None = None) -> None:
        self.peripherals: dict[str, VirtualPeripheral] = {}
        for p in peripherals or []:
            self.add(p)

    def add(self, peripheral: VirtualPeripheral) -> VirtualPeripheral:
        """Put a peripheral on the air."""
        self.peripherals[peripheral.address.upper()] = peripheral
        return peripheral

    def find(self, address: str) -> VirtualPeripheral | None:
        """The peripheral with this address, if it exists."""
        return self.peripherals.get(address.upper())

    def close(self) -> None:
        """Stop every peripheral."""
        for p in self.peripherals.values():
            p.close()


class VirtualBleakScanner(BaseBleakScanner):
    """bleak scanner backend that reports the advertising peripherals of a :class:`VirtualAir`."""

    def __init__(
        self,
        detection_callback: Any,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        air: VirtualAir,
        interval: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self.air, self.interval = air, interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._task = asyncio.get_running_loop().create_task(self._advertise())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _advertise(self) -> None:
        while True:
            for p in list(self.air.peripherals.values()):
                if not p.advertising or p.connected:
                    continue
                adv = p.advertisement()
                if not self.is_allowed_uuid(adv.service_uuids):
                    continue
                device = self.create_or_update_device(p.address, p.address, p.name, p, adv)
                self.call_detection_callbacks(device, adv)
            await asyncio.sleep(self.interval)


class VirtualBleakClient(BaseBleakClient):
    """bleak client backend connected to a :class:`VirtualPeripheral`."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        air: VirtualAir,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self.air = air
        self._peripheral: VirtualPeripheral | None = None
        self._callbacks: dict[int, NotifyCallback] = {}

    @property
    def name(self) -> str:
        return self._peripheral.name if self._peripheral else self.address

    @property
    def mtu_size(self) -> int:
        return self._peripheral.mtu if self._peripheral else 23

    @property
    def is_connected(self) -> bool:
        return self._peripheral is not None

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        await asyncio.sleep(0.01)
        peripheral = self.air.find(self.address)
        if peripheral is None or not peripheral.advertising:
            raise BleakDeviceNotFoundError(self.address, f"device {self.address} not found")
        peripheral.attach(self)
        self._peripheral = peripheral
        self.services = _services(peripheral)

    def lost(self) -> None:
        """Called by the peripheral when it drops the link."""
        self._peripheral = None
        self._callbacks.clear()
        if self._disconnected_callback is not None:
            asyncio.get_running_loop().call_soon(self._disconnected_callback)

    async def disconnect(self) -> None:
        if self._peripheral is not None:
            for callback in self._callbacks.values():
                self._peripheral.unsubscribe(callback)
            self._peripheral.detach()
            self._peripheral = None
        self._callbacks.clear()

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        if self._peripheral is None:
            raise BleakError("Not connected")
        self._callbacks[characteristic.handle] = callback
        self._peripheral.subscribe(callback)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        callback = self._callbacks.pop(characteristic.handle, None)
        if self._peripheral is not None and callback is not None:
            self._peripheral.unsubscribe(callback)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Virtual peripherals need no pairing."""

    async def unpair(self) -> None:
        """Virtual peripherals need no pairing."""

    async def read_gatt_char(self, characteristic: Any, **kwargs: Any) -> bytearray:
        raise BleakError("the virtual IMU characteristic is notify-only")

    async def read_gatt_descriptor(self, descriptor: Any, **kwargs: Any) -> bytearray:
        raise BleakError("the virtual peripheral has no readable descriptors")

    async def write_gatt_char(self, characteristic: Any, data: Any, response: bool) -> None:
        raise BleakError("the virtual IMU characteristic is notify-only")

    async def write_gatt_descriptor(self, descriptor: Any, data: Any) -> None:
        raise BleakError("the virtual peripheral has no writable descriptors")


def _services(peripheral: VirtualPeripheral) -> BleakGATTServiceCollection:
    collection = BleakGATTServiceCollection()
    service = BleakGATTService(None, 10, peripheral.service_uuid)
    collection.add_service(service)
    char = BleakGATTCharacteristic(
        None, 11, peripheral.char_uuid, ["notify"], lambda: peripheral.mtu - 3, service
    )
    collection.add_characteristic(char)
    return collection
