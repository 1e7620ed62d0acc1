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
from collections.abc import Sequence
from typing import Any

from imu_har.runtime.service import Inbound, ServiceRuntime
from imu_har.runtime.settings import service_settings
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.gateway import Gateway
from services.ble_gateway.settings import GatewaySettings, startup_problem

__all__ = ["Gateway", "GatewayService", "GatewaySettings", "main"]

logger = logging.getLogger(__name__)


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
            publish_many=runtime.publish_many,
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


def main(argv: Sequence[str] | None = None) -> int:
    """``har gateway``: BLE, simulated or replayed wearables -> raw frames."""
    settings = service_settings(
        GatewaySettings,
        "gateway",
        "Stream wearables (BLE, simulated or replayed) as raw IMU frames over MQTT.",
        argv,
    )
    problem = startup_problem(settings)
    if problem:
        print(f"har gateway: {problem}", file=sys.stderr)
        return 2
    runtime = ServiceRuntime("gateway", settings)
    service = GatewayService(settings, runtime)
    code = runtime.run(service)
    return 1 if service.failed else code
