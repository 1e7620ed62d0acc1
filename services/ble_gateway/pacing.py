"""When simulated wearables send their packets: pure pacing, no clock, no I/O.

:class:`Pacer` turns elapsed time into the stream samples taken and the packet
ends (per phase) that became full; :func:`packet_samples` is the notification
size. Used by :mod:`services.ble_gateway.sim`, tested with a simulated clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from services.ble_gateway import packets

MAX_BACKLOG = 2.0  # s: a sim further behind real time than this skips ahead


def packet_samples(mtu: int, rate: float, tick: float | None = None) -> int:
    """Samples per simulated notification: a full packet at ``mtu``, or what ``tick`` s hold.

    ``tick`` (an explicit notification interval) gives ``round(tick * rate)``
    samples, at least one and at most a full packet.
    """
    full = packets.samples_per_packet(mtu)
    if tick is None:
        return full
    return max(1, min(full, round(tick * rate)))


class Pacer:
    """When simulated packets are sent (pure; times in s since start, positions in samples).

    Stream sample ``k`` is taken at ``(k + 1 + lagged) / rate`` (the end of its
    sampling period). A device of phase ``p`` sends the packets that end (one
    past their last sample) at ``e = p + packet * m``, ``m >= 1``, each once
    sample ``e - 1`` is taken. Without ``tick`` the source wakes exactly when
    the next packet of any phase is full; with one it wakes every ``tick``
    seconds (not before the next full packet) and sends every packet completed
    since. A process that falls more than :data:`MAX_BACKLOG` s behind skips
    ahead (counted in :attr:`lagged`; the stream pauses) instead of bursting.
    """

    def __init__(
        self, rate: float, packet: int, phases: Iterable[int] = (0,), tick: float | None = None
    ) -> None:
        self.rate, self.packet, self.tick = rate, packet, tick
        self.phases = frozenset(int(p) for p in phases)
        if not self.phases or not all(0 <= p < packet for p in self.phases):
            raise ValueError(f"phases must be in 0..{packet - 1}, got {sorted(self.phases)}")
        self.max_backlog = int(MAX_BACKLOG * rate)
        self.sent = 0  # stream samples taken so far: every packet ending at or before is sent
        self.lagged = 0  # samples skipped because the process fell behind

    def ready(self, elapsed: float) -> tuple[int, int]:
        """``(lo, hi)``: the stream samples ``lo .. hi - 1`` were taken since the last call."""
        taken = int(elapsed * self.rate + 1e-6) - self.lagged
        if taken - self.sent > self.max_backlog:
            self.lagged += taken - self.sent - self.max_backlog
            taken = self.sent + self.max_backlog
        lo, self.sent = self.sent, max(self.sent, taken)
        return lo, self.sent

    def ends(self, lo: int, hi: int) -> list[int]:
        """Packet ends in ``(lo, hi]``: the packets full once samples up to ``hi - 1`` are taken."""
        return [
            e for e in range(max(lo + 1, self.packet), hi + 1) if e % self.packet in self.phases
        ]

    def next_end(self, after: int) -> int:
        """The first packet end after stream position ``after``."""
        end = max(after + 1, self.packet)
        while end % self.packet not in self.phases:
            end += 1
        return end

    def next_wake(self, elapsed: float) -> float:
        """Time of the next wake: when the next packet is full (not before the next tick)."""
        full = (self.next_end(self.sent) + self.lagged) / self.rate
        if self.tick is None:
            return full
        return max(full, (math.floor(elapsed / self.tick) + 1) * self.tick)
