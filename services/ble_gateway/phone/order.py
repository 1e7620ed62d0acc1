"""A phone's batches back in ``messageId`` order: reordered within a short horizon, repeats dropped.

Sensor Logger numbers its messages (``messageId`` +1 each) because they may
arrive out of order (PUSHING.md), and QoS 0 or an HTTP retry may deliver one
twice. Per phone and recording (``sessionId``):

- the next expected id is published at once, with any held ids that follow it
  (those count as ``reordered``);
- a later id is held until the missing ones arrive, for at most ``horizon``
  seconds or ``max_held`` batches; then the gap is given up (``lost``) and the
  held batches are published in order;
- an id already published (among the last :data:`REMEMBERED`) or held is a
  ``duplicate``; an older id is ``late`` (its turn has passed): both dropped;
- a new ``sessionId`` (a new recording) starts over, after publishing what the
  old one still held.

Pure module.
"""

from __future__ import annotations

from collections import deque

from services.ble_gateway.phone.schema import PhoneBatch

REMEMBERED = 256  # published ids remembered to tell a duplicate from a late batch


class BatchOrder:
    """One phone's reorder buffer (bounded by ``max_held``) and its counts."""

    def __init__(self, horizon: float, max_held: int) -> None:
        self.horizon, self.max_held = horizon, max_held
        self.session: str | None = None
        self.expected: int | None = None
        self.held: dict[int, tuple[PhoneBatch, float]] = {}
        self._recent: deque[int] = deque(maxlen=REMEMBERED)
        self._recent_set: set[int] = set()
        self.duplicates = self.reordered = self.late = self.lost = 0

    def push(self, batch: PhoneBatch, now: float) -> tuple[list[PhoneBatch], bool]:
        """Batches to publish now, in order, and whether a new recording starts with them."""
        out: list[PhoneBatch] = []
        new_session = batch.session_id != self.session
        if new_session:
            out = self.flush()
            self.session, self.expected = batch.session_id, None
            self._recent.clear()
            self._recent_set.clear()
        mid = batch.message_id
        if self.expected is None:
            self.expected = mid
        if mid in self.held or mid in self._recent_set:
            self.duplicates += 1
        elif mid < self.expected:
            self.late += 1
        elif mid == self.expected:
            out.append(self._emit(batch))
            out += self._consecutive(reordered=True)
        else:
            self.held[mid] = (batch, now)
            if len(self.held) > self.max_held:
                out += self._give_up()
        return out, new_session

    def due(self, now: float) -> list[PhoneBatch]:
        """Held batches whose missing predecessors did not come within the horizon."""
        out: list[PhoneBatch] = []
        while self.held and now - min(at for _, at in self.held.values()) >= self.horizon:
            out += self._give_up()
        return out

    def flush(self) -> list[PhoneBatch]:
        """Everything held, in order (gaps counted lost)."""
        out: list[PhoneBatch] = []
        while self.held:
            out += self._give_up()
        return out

    def _give_up(self) -> list[PhoneBatch]:
        first = min(self.held)
        assert self.expected is not None
        self.lost += first - self.expected
        self.expected = first
        return self._consecutive(reordered=False)

    def _consecutive(self, reordered: bool) -> list[PhoneBatch]:
        out = []
        while self.expected in self.held:
            batch, _ = self.held.pop(self.expected)
            self.reordered += reordered
            out.append(self._emit(batch))
        return out

    def _emit(self, batch: PhoneBatch) -> PhoneBatch:
        mid = batch.message_id
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(mid)
        self._recent_set.add(mid)
        self.expected = mid + 1
        return batch
