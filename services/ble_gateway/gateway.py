"""The asyncio side of ``har gateway``: the source, one packet queue, one consumer.

BLE notifications and simulated packets are only enqueued (:meth:`Gateway.enqueue`
never blocks); one consumer task decodes and publishes them through the
:class:`GatewayCore`, so a slow publish never blocks a BLE callback. Replayed
samples go to the core directly. A status task publishes device statuses.
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.ble_gateway.core import GatewayCore
from services.ble_gateway.settings import GatewaySettings
from services.ble_gateway.sources import Source

logger = logging.getLogger(__name__)

# Frames per socket write: a bigger batch saves little more and delays its first frame.
PUBLISH_BATCH = 64


class Gateway:
    """The asyncio side: one bounded packet queue, one consumer, the statuses."""

    def __init__(self, settings: GatewaySettings, core: GatewayCore) -> None:
        self.settings, self.core = settings, core
        self.stop = asyncio.Event()
        self.queue: asyncio.Queue[tuple[str, bytes, float]] = asyncio.Queue(settings.queue_size)
        self.dropped = 0

    def enqueue(self, device: str, data: bytes, received_at: float) -> None:
        """The only thing a notification callback does (never blocks)."""
        try:
            self.queue.put_nowait((device, data, received_at))
        except asyncio.QueueFull:
            self.dropped += 1
            self.core.reject("queue_full", f"{device}: packet queue full, packet dropped")

    async def run(self, source: Source) -> None:
        """Run the source, the consumer and the status loop until :attr:`stop`.

        A source that ends by itself (a replay) leaves its devices'
        statuses in place; the gateway keeps running until stopped.
        """
        tasks = [
            asyncio.create_task(self._consume()),
            asyncio.create_task(self._statuses()),
        ]
        try:
            await source.run(self.stop)
            await self.stop.wait()
        finally:
            self.stop.set()
            await asyncio.sleep(0)
            self._drain()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            source.close()
            self.core.publish_statuses(time.monotonic(), force=True)

    def _handle(self, device: str, data: bytes, received_at: float) -> None:
        """One packet; a bug is counted and logged, and the next packet is handled all the same."""
        try:
            self.core.on_packet(device, data, received_at)
        except Exception as exc:
            self.core.reject("handler_error", f"{device!r}: {exc!r}")
            logger.exception("gateway failed on a packet of %r", device)

    async def _consume(self) -> None:
        while True:
            packet = await self.queue.get()
            # what has queued up meanwhile is published in one write (up to PUBLISH_BATCH frames)
            try:
                with self.core.batch():
                    self._handle(*packet)
                    for _ in range(PUBLISH_BATCH - 1):
                        if self.queue.empty():
                            break
                        self._handle(*self.queue.get_nowait())
            except Exception as exc:  # the batch's publish failed: count it, keep consuming
                self.core.reject("handler_error", f"publishing a batch of frames: {exc!r}")
                logger.exception("gateway failed to publish a batch of frames")
            await asyncio.sleep(0)  # a burst of packets must not starve the BLE tasks

    def _drain(self) -> None:
        while not self.queue.empty():
            self._handle(*self.queue.get_nowait())

    async def _statuses(self) -> None:
        while True:
            self.core.publish_statuses(time.monotonic())
            await asyncio.sleep(0.5)
