"""``har gateway``: wearables (BLE, simulated or replayed) -> raw frames on ``<root>/<device>/imu``.

:func:`build` makes everything from the settings: the core, the asyncio
gateway and its source with every device registered, so a bad replay table or
device list stops the gateway before it connects (``StartupError``, exit 2).
See :mod:`services.ble_gateway.handler` for how it runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.skeleton import StartupError, serve
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.gateway import Gateway
from services.ble_gateway.handler import GatewayHandler
from services.ble_gateway.settings import GatewaySettings, startup_problem
from services.ble_gateway.sources import make_source

__all__ = ["GatewayHandler", "GatewaySettings", "build", "main"]


def build(settings: GatewaySettings) -> tuple[ServiceRuntime, GatewayHandler]:
    """The runtime and handler for ``settings`` (main and the tests both use this)."""
    problem = startup_problem(settings)
    if problem:
        raise StartupError(problem)
    runtime = ServiceRuntime("gateway", settings)
    core = GatewayCore(
        runtime.publish, settings, reject=runtime.reject, publish_many=runtime.publish_many
    )
    gateway = Gateway(settings, core)
    try:
        source = make_source(settings, core, gateway.enqueue)
    except (OSError, ValueError) as exc:  # a replay table or device list that cannot be served
        raise StartupError(str(exc)) from exc
    return runtime, GatewayHandler(settings, runtime, gateway, source)


def main(argv: Sequence[str] | None = None) -> int:
    """``har gateway``: BLE, simulated or replayed wearables -> raw frames."""
    return serve(
        "gateway",
        GatewaySettings,
        "Stream wearables (BLE, simulated or replayed) as raw IMU frames over MQTT.",
        build,
        argv,
    )
