"""The gateway's runtime handler: runs the asyncio gateway on a thread once the broker is up.

The sources are asyncio code (bleak is asyncio); they run on one event loop in
a worker thread that :meth:`GatewayHandler.tick` starts once the broker
connection is up. The runtime (main thread) owns the MQTT connection, signals
and the service status; frames and device statuses are published from the
loop. A source that fails stops the service with exit status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from imu_har.runtime.handler import each
from imu_har.runtime.service import Inbound, ServiceRuntime
from services.ble_gateway.gateway import Gateway
from services.ble_gateway.settings import GatewaySettings
from services.ble_gateway.sources import MqttInput, Source

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0  # s: how long close() waits for the sources to stop and drain


class GatewayHandler:
    """Runtime handler: starts the asyncio gateway on a thread once the broker is connected."""

    def __init__(
        self,
        settings: GatewaySettings,
        runtime: ServiceRuntime,
        gateway: Gateway,
        source: Source,
    ) -> None:
        self.settings, self.runtime = settings, runtime
        self.gateway, self.source, self.core = gateway, source, gateway.core
        # A source that reads the broker too (phones) gets its messages; others get none.
        self.input: MqttInput | None = source if hasattr(source, "handle") else None  # type: ignore[assignment]
        if self.input is not None:
            self.input.bind(runtime)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.failed: str | None = None
        self.exit_status = 0  # 1 once a source failed (returned by serve)

    def subscriptions(self) -> list[tuple[str, int]]:
        """The source's inputs (phones); none otherwise: the gateway only publishes."""
        return self.input.subscriptions() if self.input is not None else []

    def handle_batch(self, messages: list[Inbound]) -> None:
        """Phone messages go to the phone source; anything else is counted, never handled."""
        each(self.runtime, messages, self.input.handle if self.input else self._unexpected)

    def _unexpected(self, message: Inbound) -> None:
        self.runtime.reject("bad_topic", f"{message.topic!r}: the gateway subscribes to nothing")

    def tick(self, now: float) -> None:
        """Start the gateway once connected; stop the service when its source failed."""
        if self.thread is None and self.runtime.connected.is_set():
            self.thread = threading.Thread(target=self._serve, name="gateway-asyncio", daemon=True)
            self.thread.start()
        elif self.thread is not None and not self.thread.is_alive() and self.failed:
            self.runtime.stop()

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self.gateway.run(self.source))
        except Exception as exc:  # a broken source must stop the service, loudly
            self.failed = f"{type(exc).__name__}: {exc}"
            self.exit_status = 1
            logger.exception("gateway source failed")
            self.runtime.error(f"gateway source failed: {self.failed}")
        finally:
            self.loop.close()

    def details(self) -> dict[str, Any]:
        """Source, device counts by state, totals, queue depth and dropped packets."""
        details: dict[str, Any] = {"source": self.settings.source, **self.core.summary()}
        details["queue_depth"] = self.gateway.queue.qsize()
        details["dropped"] = self.gateway.dropped
        if self.input is not None:
            details["phone"] = self.input.details()
        if self.failed:
            details["failed"] = self.failed
        return details

    def close(self) -> None:
        """Stop the sources, drain queued packets, publish final statuses."""
        if self.loop is not None and self.thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self.loop.call_soon_threadsafe(self.gateway.stop.set)
            self.thread.join(STOP_TIMEOUT)
