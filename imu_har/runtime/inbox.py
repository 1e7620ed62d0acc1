r"""Received messages waiting for a service, handed out in batches.

Paho's network thread only :meth:`Inbox.put`\s; the service thread takes
batches (up to ``max_batch``, waiting at most ``batch_wait`` seconds for more
after the first), which lets the classifier micro-batch across devices.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from paho.mqtt.properties import Properties


@dataclass(slots=True)
class Inbound:
    """A received message, as handed to a :class:`Handler`."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties | None = None
    received_at: float = field(default_factory=time.time)
    ack: Callable[[], None] = lambda: None  # acknowledges under manual_ack; no-op otherwise


class Inbox:
    """A FIFO of :class:`Inbound` with batch retrieval, bounded to ``limit`` messages.

    A service that cannot keep up sheds the newest messages (the caller counts
    them) instead of growing without bound; ``limit=None`` never sheds, for
    services that must not lose input (the recorder does not acknowledge what
    it has not written, so the broker keeps it).
    """

    def __init__(
        self, max_batch: int = 1, batch_wait: float = 0.0, limit: int | None = 100_000
    ) -> None:
        self.max_batch = max_batch
        self.batch_wait = batch_wait
        self.limit = limit
        self._queue: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        # Waiting is done on this event, never with SimpleQueue.get(timeout=...): in CPython
        # 3.11 a signal that interrupts that call near its deadline makes it block forever
        # (it retries with a negative timeout), so a stop signal could hang a service.
        self._arrived = threading.Event()
        self._waiting = False  # set() only then: it costs about 0.5 us per call

    def put(self, message: Inbound) -> bool:
        """Add a message (any thread); False, and not added, when the inbox is full."""
        if self.limit is not None and self._queue.qsize() >= self.limit:
            return False
        self._queue.put(message)
        if self._waiting:
            self._arrived.set()
        return True

    def put_many(self, messages: list[Inbound]) -> list[Inbound]:
        """Add messages in order (any thread); returns those refused because the inbox is full."""
        room = len(messages) if self.limit is None else self.limit - self._queue.qsize()
        put = self._queue.put
        for message in messages[: max(room, 0)]:
            put(message)
        if self._waiting and room > 0 and messages:
            self._arrived.set()
        return messages[max(room, 0) :]

    def qsize(self) -> int:
        """Messages waiting."""
        return self._queue.qsize()

    def next_batch(self, timeout: float) -> list[Inbound]:
        """Up to ``max_batch`` messages; empty if none arrived within ``timeout``."""
        first = self._get(time.monotonic() + timeout)
        if first is None:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait
        get_nowait = self._queue.get_nowait
        while len(batch) < self.max_batch:
            try:
                batch.append(get_nowait())
            except queue.Empty:
                message = self._get(deadline)
                if message is None:
                    break
                batch.append(message)
        return batch

    def _get(self, deadline: float) -> Inbound | None:
        """The next message, or None if none arrives before ``deadline`` (monotonic)."""
        while True:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # Announce the wait before looking again, so that a put() from now on sets the
            # event (the GIL orders these steps); one before the look is seen by qsize().
            self._waiting = True
            self._arrived.clear()
            if not self._queue.qsize():
                self._arrived.wait(remaining)
            self._waiting = False

    def drain(self, timeout: float, chunk: int = 1024) -> Iterator[list[Inbound]]:
        """Yield what is queued now, in chunks, until empty or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending: list[Inbound] = []
            while len(pending) < chunk:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not pending:
                return
            yield pending
