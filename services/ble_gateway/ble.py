"""``--source ble``: find, connect and stream wearables with bleak.

One task per configured wearable. Scanning and connecting are serialized
behind one asyncio lock (BlueZ handles one scan/connect at a time); streaming
runs concurrently. Connections use bleak-retry-connector's
``establish_connection``; a dropped link reconnects with exponential backoff.
Notifications are only enqueued by the callback (decoding and publishing happen
off the BLE callback, see :mod:`services.ble_gateway.app`); each connection has
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
from dataclasses import dataclass
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from services.ble_gateway import packets
from services.ble_gateway.core import DeviceLink, GatewayCore

logger = logging.getLogger(__name__)

Sink = Callable[[str, bytes, float], object]


@dataclass(frozen=True)
class BleDeviceConfig:
    """How to find one wearable and read it; at least one of address, name, service_uuid."""

    device: str
    address: str | None = None
    name: str | None = None
    service_uuid: str | None = None
    char_uuid: str = packets.IMU_CHAR_UUID
    fmt: str = packets.BATCHED
    rate: float = 50.0

    def matches(self, device: BLEDevice, adv: AdvertisementData) -> bool:
        """Whether a scanned device is this wearable."""
        if self.address and device.address.lower() != self.address.lower():
            return False
        if self.name and self.name not in (adv.local_name, device.name):
            return False
        uuids = [u.lower() for u in adv.service_uuids]
        return not (self.service_uuid and self.service_uuid.lower() not in uuids)


def parse_device_spec(spec: str | dict[str, Any]) -> BleDeviceConfig:
    """``"id=wrist;address=AA:BB:..;format=legacy"`` (or a dict) -> :class:`BleDeviceConfig`."""
    if isinstance(spec, str):
        items = [part.split("=", 1) for part in spec.split(";") if part.strip()]
        if any(len(item) != 2 for item in items):
            raise ValueError(f"device spec {spec!r} must be key=value pairs joined by ';'")
        spec = {k.strip(): v.strip() for k, v in items}
    keys = {"id", "device", "address", "name", "service", "service_uuid", "char", "char_uuid"}
    unknown = set(spec) - keys - {"format", "fmt", "rate"}
    if unknown:
        raise ValueError(f"unknown device setting(s) {sorted(unknown)}")
    device = spec.get("id") or spec.get("device")
    if not device:
        raise ValueError(f"device spec {spec!r} needs an id")
    config = BleDeviceConfig(
        device=str(device),
        address=spec.get("address"),
        name=spec.get("name"),
        service_uuid=spec.get("service") or spec.get("service_uuid"),
        char_uuid=str(spec.get("char") or spec.get("char_uuid") or packets.IMU_CHAR_UUID),
        fmt=str(spec.get("format") or spec.get("fmt") or packets.BATCHED),
        rate=float(spec.get("rate", 50.0)),
    )
    if not (config.address or config.name or config.service_uuid):
        raise ValueError(f"device {device!r} needs an address, a name or a service uuid")
    if config.fmt not in packets.FORMATS:
        raise ValueError(f"device {device!r}: format must be one of {packets.FORMATS}")
    return config


class BleSource:
    """Keeps every configured wearable connected and streaming into ``sink``."""

    def __init__(
        self,
        core: GatewayCore,
        configs: list[BleDeviceConfig],
        sink: Sink,
        *,
        scan_timeout: float = 10.0,
        backoff_max: float = 30.0,
        silence_timeout: float = 5.0,
        backend_kwargs: dict[str, Any] | None = None,
        scanner_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.core, self.configs, self.sink = core, configs, sink
        self.scan_timeout, self.backoff_max = scan_timeout, backoff_max
        self.silence_timeout = silence_timeout
        self.backend_kwargs = backend_kwargs or {}
        self.scanner_kwargs = scanner_kwargs or {}
        self.lock = asyncio.Lock()  # one scan or connect at a time (BlueZ)
        self.generation: dict[str, int] = {}
        self.stale_notifications = 0
        for config in configs:
            core.add(DeviceLink(config.device, source="ble", fmt=config.fmt, rate=config.rate))

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
