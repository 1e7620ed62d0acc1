"""The asyncio side of ``har gateway``: the configured source, one packet queue, one consumer.

BLE notifications and simulated packets are only enqueued (:meth:`Gateway.enqueue`
never blocks); one consumer task decodes and publishes them through the
:class:`GatewayCore`, so a slow publish never blocks a BLE callback. Replayed
samples go to the core directly. A status task publishes device statuses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from imu_har.sim.simulation import parse_schedule
from services.ble_gateway import packets
from services.ble_gateway.ble import BleDeviceConfig, BleSource, parse_device_spec
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.replay import ReplaySource, build_tracks, load_table
from services.ble_gateway.settings import GatewaySettings
from services.ble_gateway.sim import SimFleet, SimSource, packet_samples
from services.ble_gateway.virtual import (
    IMU_CHAR_UUID,
    SERVICE_UUID,
    VirtualAir,
    VirtualBleakClient,
    VirtualBleakScanner,
    VirtualPeripheral,
)

logger = logging.getLogger(__name__)

# Frames per socket write: a bigger batch saves little more and delays its first frame.
PUBLISH_BATCH = 64


class Gateway:
    """The asyncio side: one packet queue, one consumer, the configured source."""

    def __init__(self, settings: GatewaySettings, core: GatewayCore) -> None:
        self.settings, self.core = settings, core
        self.stop = asyncio.Event()
        self.queue: asyncio.Queue[tuple[str, bytes, float]] = asyncio.Queue(settings.queue_size)
        self.dropped = 0
        self.source: Any = None
        self.air: VirtualAir | None = None

    def enqueue(self, device: str, data: bytes, received_at: float) -> None:
        """The only thing a notification callback does (never blocks)."""
        try:
            self.queue.put_nowait((device, data, received_at))
        except asyncio.QueueFull:
            self.dropped += 1
            self.core.reject("queue_full", f"{device}: packet queue full, packet dropped")

    async def run(self) -> None:
        """Run the source, the consumer and the status loop until :attr:`stop`."""
        self.source = self._make_source()
        tasks = [
            asyncio.create_task(self._consume()),
            asyncio.create_task(self._statuses()),
        ]
        try:
            await self.source.run(self.stop)
            if self.settings.source == "replay":
                await self.stop.wait()
        finally:
            self.stop.set()
            await asyncio.sleep(0)
            await self._drain()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.air is not None:
                self.air.close()
            self.core.publish_statuses(time.monotonic(), force=True)

    def _make_source(self) -> Any:
        s = self.settings
        if s.source == "sim":
            schedule = parse_schedule(s.schedule) if s.schedule else None
            fleet = SimFleet(
                s.devices,
                rate=s.rate,
                mtu=s.mtu,
                schedule=schedule,
                seed=s.seed,
                prefix=s.device_prefix,
                tick=s.tick,
            )
            return SimSource(self.core, fleet, self.enqueue, tick=s.tick, truth=s.truth)
        if s.source == "replay":
            if s.file is None:
                raise ValueError("--source replay needs --file")
            mapping = dict(item.split("=", 1) for item in s.device_map)
            tracks = build_tracks(
                load_table(s.file), units=s.units, rate=s.replay_rate, device_map=mapping
            )
            per_notification = packet_samples(s.mtu, s.rate, s.tick)
            return ReplaySource(
                self.core,
                tracks,
                speed=s.speed,
                tick=min(s.tick or 0.1, 0.1),
                loop=s.loop,
                truth=s.truth,
                packet_interval=per_notification / s.rate,
                packet_max=packets.samples_per_packet(s.mtu),
            )
        configs = [parse_device_spec(spec) for spec in s.ble_devices]
        kwargs: dict[str, Any] = {}
        scanner_kwargs: dict[str, Any] = {}
        if s.ble_backend == "virtual":
            configs, self.air = self._virtual_wearables(configs)
            kwargs = {"backend": VirtualBleakClient, "air": self.air}
            scanner_kwargs = {"backend": VirtualBleakScanner, "air": self.air}
        if not configs:
            raise ValueError("--source ble needs --ble-devices (or --ble-backend virtual)")
        return BleSource(
            self.core,
            configs,
            self.enqueue,
            scan_timeout=s.scan_timeout,
            backoff_max=s.backoff_max,
            silence_timeout=s.silence_timeout,
            backend_kwargs=kwargs,
            scanner_kwargs=scanner_kwargs,
        )

    def _virtual_wearables(
        self, configs: list[BleDeviceConfig]
    ) -> tuple[list[BleDeviceConfig], VirtualAir]:
        """Virtual peripherals for the configured devices, or ``--devices`` new ones."""
        s = self.settings
        air = VirtualAir()
        if not configs:
            configs = [
                BleDeviceConfig(
                    f"ble-{i + 1:03d}", name=f"HAR-Nano-{i + 1:03d}", service_uuid=SERVICE_UUID
                )
                for i in range(s.devices)
            ]
        for i, config in enumerate(configs):
            air.add(
                VirtualPeripheral(
                    config.address or f"F0:00:00:00:{i // 256:02X}:{i % 256:02X}",
                    config.name or config.device,
                    fmt=config.fmt,
                    rate=config.rate,
                    mtu=s.mtu,
                    seed=s.seed + i,
                    service_uuid=config.service_uuid or SERVICE_UUID,
                    char_uuid=config.char_uuid or IMU_CHAR_UUID,
                )
            )
        return configs, air

    async def _consume(self) -> None:
        while True:
            packet = await self.queue.get()
            # what has queued up meanwhile is published in one write (up to PUBLISH_BATCH frames)
            with self.core.batch():
                self.core.on_packet(*packet)
                for _ in range(PUBLISH_BATCH - 1):
                    if self.queue.empty():
                        break
                    self.core.on_packet(*self.queue.get_nowait())
            await asyncio.sleep(0)  # a burst of packets must not starve the BLE tasks

    async def _drain(self) -> None:
        while not self.queue.empty():
            device, data, received_at = self.queue.get_nowait()
            self.core.on_packet(device, data, received_at)

    async def _statuses(self) -> None:
        while True:
            self.core.publish_statuses(time.monotonic())
            await asyncio.sleep(0.5)
