"""Where the gateway's data comes from: one builder per ``--source``.

A source registers its devices with the :class:`GatewayCore` when it is built
(so ``build`` refuses a bad one before connecting) and then runs on the
gateway's event loop. Packet sources (BLE, sim) hand ``(device, bytes,
receive time)`` to ``sink``, the gateway's queue; sample sources (replay) call
the core directly. A new source is a class with :class:`Source`'s two methods
and one entry in :data:`BUILDERS` (and in ``GatewaySettings.source``); one that
also reads the broker (phones) adds :class:`MqttInput`'s methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from imu_har.runtime.inbox import Inbound
from imu_har.runtime.service import ServiceRuntime
from services.ble_gateway import profiles
from services.ble_gateway.ble import BleSource
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.replay import ReplaySource
from services.ble_gateway.replay_table import build_tracks, load_table
from services.ble_gateway.settings import GatewaySettings
from services.ble_gateway.sim import SimFleet, SimSource
from services.ble_gateway.specs import BleDeviceConfig
from services.ble_gateway.virtual import (
    SERVICE_UUID,
    VirtualAir,
    VirtualBleakClient,
    VirtualBleakScanner,
    VirtualPeripheral,
)

Sink = Callable[[str, bytes, float], object]


class Source(Protocol):
    """What the gateway runs."""

    async def run(self, stop: asyncio.Event) -> None:
        """Serve the devices until ``stop`` is set (a replay may end sooner)."""

    def close(self) -> None:
        """Release what the source holds (after :meth:`run`)."""


class MqttInput(Protocol):
    """A source that also reads the broker (phones): the gateway handler routes to it."""

    def bind(self, runtime: ServiceRuntime) -> None:
        """The runtime, for subscriptions made while running."""

    def subscriptions(self) -> list[tuple[str, int]]:
        """Topic filters and QoS to (re)subscribe on every connect."""

    def handle(self, message: Inbound) -> None:
        """One received message; raises ``PayloadError`` for a bad one."""

    def details(self) -> dict[str, Any]:
        """For the gateway's service status."""


def sim_source(settings: GatewaySettings, core: GatewayCore, sink: Sink) -> Source:
    """``--source sim``: simulated wearables notifying real packets."""
    return SimSource(core, SimFleet(settings), sink, settings)


def replay_source(settings: GatewaySettings, core: GatewayCore, sink: Sink) -> Source:
    """``--source replay``: a recorded table; bad rows and devices are refused and counted."""
    if settings.file is None:
        raise ValueError("--source replay needs --file")
    tracks = build_tracks(load_table(settings.file), settings, core.reject)
    return ReplaySource(core, tracks, settings)


def ble_source(settings: GatewaySettings, core: GatewayCore, sink: Sink) -> Source:
    """``--source ble``: wearables over bleak, or virtual ones (``--ble-backend virtual``)."""
    configs = settings.ble_configs()
    if settings.ble_backend == "bleak":
        if not configs:
            raise ValueError("--source ble needs --ble-devices (or --ble-backend virtual)")
        return BleSource(core, configs, sink, settings)
    configs, air = virtual_wearables(settings, configs)
    return BleSource(
        core,
        configs,
        sink,
        settings,
        backend_kwargs={"backend": VirtualBleakClient, "air": air},
        scanner_kwargs={"backend": VirtualBleakScanner, "air": air},
        on_close=air.close,
    )


def virtual_wearables(
    settings: GatewaySettings, configs: list[BleDeviceConfig]
) -> tuple[list[BleDeviceConfig], VirtualAir]:
    """Virtual peripherals for the configured devices, or ``--devices`` new ones."""
    air = VirtualAir()
    if not configs:
        configs = [
            BleDeviceConfig(
                f"ble-{i + 1:03d}", name=f"HAR-Nano-{i + 1:03d}", service_uuid=SERVICE_UUID
            )
            for i in range(settings.devices)
        ]
    for i, config in enumerate(configs):
        air.add(
            VirtualPeripheral(
                config.address or f"F0:00:00:{i >> 16 & 255:02X}:{i >> 8 & 255:02X}:{i & 255:02X}",
                config.name or config.device,
                fmt=config.fmt,
                rate=config.rate or settings.rate,
                mtu=settings.mtu,
                seed=settings.seed + i,
                service_uuid=config.service_uuid or profiles.get(config.fmt).service_uuid,
                char_uuid=config.char_uuid or profiles.get(config.fmt).char_uuid,
            )
        )
    return configs, air


def phone_source(settings: GatewaySettings, core: GatewayCore, sink: Sink) -> Source:
    """``--source phone``: Sensor Logger (MQTT, HTTP push) and the phone page (docs/gateway.md)."""
    # Imported here: the phone servers need the [phone] extra, the other sources do not.
    from services.ble_gateway.phone.source import PhoneSource

    return PhoneSource(core, settings)


BUILDERS: dict[str, Callable[[GatewaySettings, GatewayCore, Sink], Source]] = {
    "sim": sim_source,
    "replay": replay_source,
    "ble": ble_source,
    "phone": phone_source,
}


def make_source(settings: GatewaySettings, core: GatewayCore, sink: Sink) -> Source:
    """The configured source, its devices registered with ``core``.

    Raises ``ValueError`` (or ``OSError`` for a replay file) when it cannot be
    built: a start-up error.
    """
    return BUILDERS[settings.source](settings, core, sink)


__all__ = ["BUILDERS", "MqttInput", "Source", "make_source"]
