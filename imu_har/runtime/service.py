"""The MQTT runtime every service shares: a connection and the main loop that serves a handler.

:class:`ServiceRuntime` is a :class:`~imu_har.runtime.connection.ServiceConnection`
(Last Will and retained online/offline status, subscriptions renewed in
``on_connect``, automatic reconnect with backoff, counters on the status topic)
plus the main loop: batches from the inbox to a :class:`Handler` on the
service's own thread, ticks, SIGTERM/SIGINT handling and a graceful shutdown
(drain, flush, offline, disconnect).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from imu_har.runtime.connection import ServiceConnection
from imu_har.runtime.handler import Handler, each
from imu_har.runtime.inbox import Inbound

__all__ = ["Handler", "Inbound", "ServiceRuntime", "each"]
logger = logging.getLogger(__name__)


class ServiceRuntime(ServiceConnection):
    """One service's MQTT connection, status and main loop."""

    def run(self, handler: Handler) -> int:
        """Serve ``handler`` until SIGTERM/SIGINT or :meth:`stop`; returns the exit code."""
        self._handler = handler
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        self.start()
        try:
            while not (self._signalled or self.stopping.is_set()):
                self._serve_once(handler)
            self.stopping.set()
            self._drain(handler)
        finally:
            self.shutdown(handler)
        return 0

    def _serve_once(self, handler: Handler) -> None:
        batch = self.inbox.next_batch(self.tick_interval)
        if batch:
            self.counters.messages_in += len(batch)
            self._safely(handler.handle_batch, batch)
        now = time.time()
        if now - getattr(self, "_last_tick", 0.0) >= self.tick_interval:
            self._last_tick = now
            self._safely(handler.tick, now)
            if self.connected.is_set():
                self.publish_status()

    def _drain(self, handler: Handler, timeout: float = 5.0) -> None:
        """Handle what is already queued, for at most ``timeout`` seconds; count the rest."""
        for pending in self.inbox.drain(timeout):
            self.counters.messages_in += len(pending)
            self._safely(handler.handle_batch, pending)
        left = self.inbox.qsize()
        if left:
            self.counters.reject("dropped_at_shutdown")
            self.error(f"shutdown: {left} queued messages not handled within {timeout:g} s")

    def _safely(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a handler bug must not kill the service
            self.counters.reject("handler_error")
            logger.exception("%s handler failed", self.name)
            self.error(f"handler failed: {exc!r}")

    def stop(self) -> None:
        """Ask the main loop to finish (from any thread; signal handlers use :meth:`_on_signal`)."""
        self.stopping.set()

    def _on_signal(self, _signum: int, _frame: object) -> None:
        # Only a flag: a handler runs between two bytecodes of the main thread, maybe inside
        # Event.set() (its lock held), so taking that lock again here would deadlock. Seen
        # for real: PDEATHSIG arrives once per dying thread of a killed launcher.
        self._signalled = True

    def shutdown(self, handler: Handler | None = None) -> None:
        """Flush the handler, publish ``offline`` (retained), disconnect."""
        self.stopping.set()
        if handler is not None:
            self._safely(handler.close)
        if self.connected.is_set():
            info = self.client.publish(
                self.status_topic, self._status("offline").to_payload(), qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        logger.info("%s stopped", self.name)
