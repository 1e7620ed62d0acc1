"""A virtual BLE backend for bleak: simulated peripherals without radio hardware.

:class:`VirtualBleakScanner` and :class:`VirtualBleakClient` implement bleak's
backend interfaces (``BaseBleakScanner``/``BaseBleakClient``) and are plugged in
with ``BleakScanner(backend=..., air=air)`` / ``BleakClient(..., backend=..., air=air)``,
so the gateway's real bleak code path (scan, connect, start_notify, disconnect
callback, reconnect) runs unchanged. They talk to the
:class:`~services.ble_gateway.peripheral.VirtualPeripheral` s of a
:class:`~services.ble_gateway.peripheral.VirtualAir` (re-exported here, with the
firmware's UUIDs), which notify real encoded packets from the wearable
simulator and can be told to drop the link, stop advertising, go silent or
send arbitrary bytes.
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
from bleak.backends.scanner import BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from services.ble_gateway.packets import IMU_CHAR_UUID, SERVICE_UUID
from services.ble_gateway.peripheral import VirtualAir, VirtualPeripheral

__all__ = [
    "IMU_CHAR_UUID",
    "SERVICE_UUID",
    "VirtualAir",
    "VirtualBleakClient",
    "VirtualBleakScanner",
    "VirtualPeripheral",
]

logger = logging.getLogger(__name__)


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
