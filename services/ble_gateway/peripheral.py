"""Virtual BLE peripherals: simulated wearables that advertise and notify real packets.

A :class:`VirtualPeripheral` advertises, accepts one connection and, while a
central is subscribed, notifies one real encoded packet (from the wearable
simulator) each time a packet is full, encoded by its format's profile
(:mod:`services.ble_gateway.profiles`): ``samples_per_packet(mtu)`` samples per
notification in the batched format (13 at MTU 247), one sample in the legacy and
WitMotion formats. Tests can tell it to drop the link, stop advertising, go silent or send
arbitrary bytes. A :class:`VirtualAir` is the set of peripherals on the air.
The bleak backend that connects to them is :mod:`services.ble_gateway.virtual`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bleak.backends.client import NotifyCallback
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from imu_har.sim.simulation import WearableSimulator
from services.ble_gateway import packets, profiles
from services.ble_gateway.packets import IMU_CHAR_UUID, SERVICE_UUID

if TYPE_CHECKING:
    from services.ble_gateway.virtual import VirtualBleakClient


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
        self.profile = profiles.get(fmt)
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
        """The next real packet of the simulated wearable, encoded by its format's profile."""
        n = self.profile.per_packet(self.mtu)
        time_ms = round(self.sim.time * 1000)
        samples, _ = self.sim.next_samples(self.label, n)
        data = self.profile.encode(samples, self.seq, time_ms, self.rate)
        self.seq = (self.seq + 1) & 0xFFFF
        return data

    async def _stream(self) -> None:
        n = self.profile.per_packet(self.mtu)
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
