"""Thread-safe counters reported on every service's status topic."""

from __future__ import annotations

import threading
import time

from imu_har.protocol.messages import Counters

LOG_EVERY_SECONDS = 5.0


class CounterSet:
    """``messages_in``/``messages_out`` plus named counters and rejections by reason.

    Integer increments on attributes are atomic enough under the GIL for
    counters; the dictionaries are guarded by a lock.
    """

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_out = 0
        self._lock = threading.Lock()
        self._rejected: dict[str, int] = {}
        self._named: dict[str, int] = {}
        self._last_log: dict[str, float] = {}

    def reject(self, reason: str) -> bool:
        """Count a rejection; True when it should be logged (first, then every few seconds)."""
        now = time.monotonic()
        with self._lock:
            self._rejected[reason] = self._rejected.get(reason, 0) + 1
            if now - self._last_log.get(reason, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
                self._last_log[reason] = now
                return True
        return False

    def inc(self, name: str, amount: int = 1) -> None:
        """Increase a named counter (shown in the status details)."""
        with self._lock:
            self._named[name] = self._named.get(name, 0) + amount

    def get(self, name: str) -> int:
        """Current value of a named counter or rejection reason."""
        with self._lock:
            return self._named.get(name, self._rejected.get(name, 0))

    def named(self) -> dict[str, int]:
        """A copy of the named counters."""
        with self._lock:
            return dict(self._named)

    def snapshot(self, queue_depth: int = 0) -> Counters:
        """The counters as the status message carries them."""
        with self._lock:
            return Counters(
                messages_in=self.messages_in,
                messages_out=self.messages_out,
                rejected=dict(self._rejected),
                queue_depth=queue_depth,
                events=dict(self._named),
            )
