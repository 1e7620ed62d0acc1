"""``--source ble``: find, connect and stream wearables with bleak.

One task per configured wearable. Scanning and connecting are serialized
behind one asyncio lock (BlueZ handles one scan/connect at a time); streaming
runs concurrently. Connections use bleak-retry-connector's
``establish_connection``; a dropped link reconnects with exponential backoff.
Notifications are only enqueued by the callback (decoding and publishing happen
off the BLE callback, see :mod:`services.ble_gateway.gateway`); each connection has
a generation number, so a callback left over from an earlier connection cannot
publish duplicates. A silent sensor is reported and, if it stays silent,
disconnected and reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from services.ble_gateway.core import GatewayCore
from services.ble_gateway.link import DeviceLink
from services.ble_gateway.specs import BleDeviceConfig

if TYPE_CHECKING:
    from services.ble_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

Sink = Callable[[str, bytes, float], object]


class BleSource:
    """Keeps every configured wearable connected and streaming into ``sink``."""

    def __init__(
        self,
        core: GatewayCore,
        configs: list[BleDeviceConfig],
        sink: Sink,
        settings: GatewaySettings,
        *,
        backend_kwargs: dict[str, Any] | None = None,
        scanner_kwargs: dict[str, Any] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.core, self.configs, self.sink = core, configs, sink
        self.scan_timeout, self.backoff_max = settings.scan_timeout, settings.backoff_max
        self.silence_timeout = settings.silence_timeout
        self.backend_kwargs = backend_kwargs or {}
        self.scanner_kwargs = scanner_kwargs or {}
        self.on_close = on_close
        self.lock = asyncio.Lock()  # one scan or connect at a time (BlueZ)
        # One entry per configured device (bounded by --max-devices, like the links).
        self.generation: dict[str, int] = {}
        self.stale_notifications = 0
        for config in configs:
            rate = config.rate or settings.rate
            core.add(DeviceLink(config.device, rate=rate, source="ble", fmt=config.fmt))

    def close(self) -> None:
        """Release what the backend holds (the virtual peripherals)."""
        if self.on_close is not None:
            self.on_close()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve every wearable until ``stop`` is set."""
        await asyncio.gather(*(self._serve(config, stop) for config in self.configs))

    async def _serve(self, config: BleDeviceConfig, stop: asyncio.Event) -> None:
        link = self.core.links[config.device]
        backoff = 1.0
        while not stop.is_set():
            try:
                streamed = await self._session(config, link, stop)
            except (BleakError, TimeoutError, OSError) as exc:
                streamed = False
                self.core.set_state(link, "disconnected", error=f"{type(exc).__name__}: {exc}")
                logger.warning("%s: connection failed: %s", config.device, exc)
            if stop.is_set():
                break
            backoff = 1.0 if streamed else min(backoff * 2, self.backoff_max)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
        self.core.set_state(link, "disconnected")

    async def _find(self, config: BleDeviceConfig, link: DeviceLink) -> BLEDevice | None:
        found: list[AdvertisementData] = []

        def match(device: BLEDevice, adv: AdvertisementData) -> bool:
            if config.matches(device, adv):
                found.append(adv)
                return True
            return False

        self.core.set_state(link, "scanning")
        kwargs = dict(self.scanner_kwargs)
        if config.service_uuid:
            kwargs["service_uuids"] = [config.service_uuid]
        async with self.lock:
            device = await BleakScanner.find_device_by_filter(
                match, timeout=self.scan_timeout, **kwargs
            )
        if device is None:
            what = config.address or config.name or config.service_uuid
            self.core.set_state(
                link, "scanning", error=f"not found after {self.scan_timeout:g} s scanning ({what})"
            )
            logger.warning("%s: %s not found; will retry", config.device, what)
        else:
            link.rssi = found[-1].rssi if found else None
        return device

    async def _session(
        self, config: BleDeviceConfig, link: DeviceLink, stop: asyncio.Event
    ) -> bool:
        """One scan-connect-stream cycle; returns whether data flowed."""
        device = await self._find(config, link)
        if device is None:
            return False
        self.core.set_state(link, "connecting", address=device.address)
        dropped = asyncio.Event()
        async with self.lock:
            client = await establish_connection(
                BleakClient,
                device,
                config.device,
                disconnected_callback=lambda _client: dropped.set(),
                max_attempts=3,
                **self.backend_kwargs,
            )
        generation = self.generation.get(config.device, 0) + 1
        self.generation[config.device] = generation
        link.reset_stream()
        frames_before = link.frames

        def on_notify(_char: Any, data: bytearray) -> None:
            if self.generation.get(config.device) != generation:
                self.stale_notifications += 1  # a callback of an earlier connection
                return
            self.sink(config.device, bytes(data), time.time())

        try:
            await client.start_notify(config.char_uuid, on_notify)
            link.last_data = time.monotonic()
            link.error = None
            self.core.set_state(link, "connected")
            logger.info(
                "%s: connected to %s (MTU %d)", config.device, device.address, client.mtu_size
            )
            await self._watch(link, dropped, stop)
        finally:
            self.generation[config.device] = generation + 1  # retire this callback
            if client.is_connected:
                with contextlib.suppress(BleakError, TimeoutError, OSError):
                    await client.stop_notify(config.char_uuid)
                with contextlib.suppress(BleakError, TimeoutError, OSError):
                    await client.disconnect()
        if not stop.is_set():
            self.core.set_state(link, "disconnected", error="link lost")
        return link.frames > frames_before

    async def _watch(self, link: DeviceLink, dropped: asyncio.Event, stop: asyncio.Event) -> None:
        """Wait until the link drops, the gateway stops, or the sensor stays silent too long."""
        waiters = [asyncio.ensure_future(dropped.wait()), asyncio.ensure_future(stop.wait())]
        try:
            while not (dropped.is_set() or stop.is_set()):
                await asyncio.wait(
                    waiters, timeout=self.silence_timeout / 4, return_when="FIRST_COMPLETED"
                )
                silent = time.monotonic() - (link.last_data or 0.0)
                if silent > 3 * self.silence_timeout:
                    logger.warning("%s: silent for %.0f s; reconnecting", link.device, silent)
                    link.error = f"silent for {silent:.0f} s; reconnecting"
                    return
                if silent > self.silence_timeout and link.state != "connected":
                    self.core.set_state(link, "connected", error=f"no data for {silent:.0f} s")
                    logger.warning("%s: connected but no data for %.0f s", link.device, silent)
        finally:
            for waiter in waiters:
                waiter.cancel()
