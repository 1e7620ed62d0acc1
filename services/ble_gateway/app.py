"""``har gateway``: wearables (BLE, simulated or replayed) -> raw frames on ``<root>/<device>/imu``.

The sources are asyncio code (bleak is asyncio); they run on one event loop in
a worker thread that the runtime handler starts once the broker connection is
up. BLE notifications and simulated packets are only enqueued; one consumer
task decodes and publishes them (:class:`GatewayCore`), so a slow publish never
blocks a BLE callback. The runtime (main thread) owns the MQTT connection,
signals and the service status; device statuses are published from the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from imu_har.logs import configure_logging
from imu_har.runtime import Inbound, ServiceRuntime
from imu_har.settings import MqttSettings, load_settings
from imu_har.simulation import parse_schedule
from services.ble_gateway import packets
from services.ble_gateway.ble import BleDeviceConfig, BleSource, parse_device_spec
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.replay import ReplaySource, build_tracks, load_table
from services.ble_gateway.sim import SimFleet, SimSource
from services.ble_gateway.virtual import (
    IMU_CHAR_UUID,
    SERVICE_UUID,
    VirtualAir,
    VirtualBleakClient,
    VirtualBleakScanner,
    VirtualPeripheral,
)

logger = logging.getLogger(__name__)


class GatewaySettings(MqttSettings):
    """Settings of ``har gateway``."""

    source: Literal["sim", "ble", "replay"] = Field(
        default="sim", description="Where data comes from"
    )
    qos: int = Field(default=0, ge=0, le=1, description="QoS of raw frames")
    truth: bool = Field(default=True, description="Publish ground truth (sim, labelled replay)")
    # sim
    devices: int = Field(default=3, ge=1, le=100_000, description="Simulated wearables (sim)")
    schedule: str | None = Field(
        default=None, description="Scripted schedule 'Squat:20,rest:5,...' (default: random)"
    )
    seed: int = Field(default=0, description="Random seed of the simulation")
    rate: float = Field(default=50.0, gt=0, le=1000, description="Sample rate (Hz) of sim/BLE")
    mtu: int = Field(default=247, ge=23, le=517, description="ATT MTU the sim packets fit in")
    tick: float = Field(default=0.2, gt=0, le=5, description="Sim/replay pacing interval (s)")
    device_prefix: str = Field(default="sim", description="Device id prefix of sim devices")
    # replay
    file: Path | None = Field(default=None, description="Parquet file or directory (replay)")
    speed: float = Field(default=1.0, gt=0, le=1000, description="Replay speed factor")
    replay_rate: float | None = Field(default=None, gt=0, description="Rate when no time column")
    units: Literal["auto", "default", "seed-fitness"] = Field(
        default="auto", description="Units of the replayed table"
    )
    device_map: list[str] = Field(default=[], description="Replay id renames old=new")
    loop: bool = Field(default=False, description="Replay forever")
    # ble
    ble_devices: list[str | dict[str, Any]] = Field(
        default=[], description="Wearables: 'id=..;address=..|name=..|service=..;format=..'"
    )
    ble_backend: Literal["bleak", "virtual"] = Field(
        default="bleak", description="bleak (real radio) or virtual (simulated peripherals)"
    )
    scan_timeout: float = Field(default=10.0, gt=0, description="Scan time per attempt (s)")
    backoff_max: float = Field(default=30.0, gt=0, description="Longest reconnect backoff (s)")
    silence_timeout: float = Field(default=5.0, gt=0, description="No data for this long: warn")
    queue_size: int = Field(default=100_000, ge=10, description="Packets buffered before dropping")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value:
            parse_schedule(value)
        return value

    @field_validator("ble_devices")
    @classmethod
    def _ble(cls, value: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        for spec in value:
            parse_device_spec(spec)
        return value

    @field_validator("device_map")
    @classmethod
    def _map(cls, value: list[str]) -> list[str]:
        if any("=" not in item for item in value):
            raise ValueError("each mapping must be old=new")
        return value


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
            )
            return SimSource(self.core, fleet, self.enqueue, tick=s.tick, truth=s.truth)
        if s.source == "replay":
            if s.file is None:
                raise ValueError("--source replay needs --file")
            mapping = dict(item.split("=", 1) for item in s.device_map)
            tracks = build_tracks(
                load_table(s.file), units=s.units, rate=s.replay_rate, device_map=mapping
            )
            return ReplaySource(
                self.core, tracks, speed=s.speed, tick=min(s.tick, 0.1), loop=s.loop, truth=s.truth
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
            device, data, received_at = await self.queue.get()
            self.core.on_packet(device, data, received_at)
            # Yield now and then so a burst of packets cannot starve the BLE tasks.
            if self.queue.qsize() and self.queue.qsize() % 256 == 0:
                await asyncio.sleep(0)

    async def _drain(self) -> None:
        while not self.queue.empty():
            device, data, received_at = self.queue.get_nowait()
            self.core.on_packet(device, data, received_at)

    async def _statuses(self) -> None:
        while True:
            self.core.publish_statuses(time.monotonic())
            await asyncio.sleep(0.5)


class GatewayService:
    """Runtime handler: starts the asyncio gateway on a thread once the broker is connected."""

    def __init__(self, settings: GatewaySettings, runtime: ServiceRuntime) -> None:
        self.settings, self.runtime = settings, runtime
        self.core = GatewayCore(
            self._publish,
            settings.topic_root,
            qos=settings.qos,
            status_interval=settings.status_interval,
            reject=runtime.reject,
        )
        self.gateway: Gateway | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.failed: str | None = None

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self.runtime.publish(topic, payload, qos=qos, retain=retain)

    def subscriptions(self) -> list[tuple[str, int]]:
        return []

    def handle_batch(self, messages: list[Inbound]) -> None:
        """The gateway subscribes to nothing."""

    def tick(self, now: float) -> None:
        if self.thread is None and self.runtime.connected.is_set():
            self.thread = threading.Thread(target=self._serve, name="gateway-asyncio", daemon=True)
            self.thread.start()
        elif self.thread is not None and not self.thread.is_alive() and self.failed:
            self.runtime.stop()

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.gateway = Gateway(self.settings, self.core)
            self.loop.run_until_complete(self.gateway.run())
        except Exception as exc:  # a broken source must stop the service, loudly
            self.failed = f"{type(exc).__name__}: {exc}"
            logger.exception("gateway source failed")
            self.runtime.error(f"gateway source failed: {self.failed}")
        finally:
            self.loop.close()

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"source": self.settings.source, **self.core.summary()}
        if self.gateway is not None:
            details["queue_depth"] = self.gateway.queue.qsize()
            details["dropped"] = self.gateway.dropped
        if self.failed:
            details["failed"] = self.failed
        return details

    def close(self) -> None:
        """Stop the sources, drain queued packets, publish final statuses."""
        if self.gateway is not None and self.loop is not None and self.thread is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.gateway.stop.set)
            self.thread.join(10.0)


def _startup_problem(s: GatewaySettings) -> str | None:
    """A readable reason why these settings cannot start, checked before connecting."""
    if s.source == "sim":
        try:
            packets.samples_per_packet(s.mtu)
        except ValueError as exc:
            return str(exc)
    if s.source == "replay" and (s.file is None or not s.file.exists()):
        return f"--source replay needs an existing --file (got {s.file})"
    if s.source == "ble" and s.ble_backend == "bleak" and not s.ble_devices:
        return "--source ble needs --ble-devices 'id=...;address=...' (see docs/gateway.md)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``har gateway``."""
    settings = load_settings(
        GatewaySettings,
        argv,
        prog="har gateway",
        description="Stream wearables (BLE, simulated or replayed) as raw IMU frames over MQTT.",
    )
    configure_logging(settings.log_level, "gateway")
    problem = _startup_problem(settings)
    if problem:
        print(f"har gateway: {problem}", file=sys.stderr)
        return 2
    runtime = ServiceRuntime("gateway", settings)
    service = GatewayService(settings, runtime)
    code = runtime.run(service)
    return 1 if service.failed else code
