"""``--source sim``: many virtual wearables that emit real batched BLE packets.

All devices advance together once per tick (vectorized by
:class:`imu_har.simulation.WearableFleet`); their samples are encoded into real
batched packets (sized to the configured ATT MTU) and handed to the same sink
as BLE notifications, so they take the gateway's decode-and-publish path.
Each device follows its own exercise schedule (scripted or random, looped) and
its ground truth is published whenever its label or repetition count changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from imu_har.simulation import (
    REST,
    Schedule,
    WearableFleet,
    random_profile,
    random_schedule,
    schedule_segments,
)
from services.ble_gateway import packets
from services.ble_gateway.core import DeviceLink, GatewayCore

logger = logging.getLogger(__name__)

Sink = Callable[[str, bytes, float], object]


@dataclass
class _Bout:
    label: str
    remaining: int  # samples left in this bout


class SimFleet:
    """N simulated wearables: per tick, batched packets plus ground-truth changes."""

    def __init__(
        self,
        n: int,
        *,
        rate: float = 50.0,
        mtu: int = 247,
        schedule: Schedule | None = None,
        seed: int = 0,
        prefix: str = "sim",
    ) -> None:
        rng = np.random.default_rng(seed)
        self.rate = rate
        self.devices = [f"{prefix}-{i + 1:03d}" for i in range(n)]
        self.fleet = WearableFleet([random_profile(rng) for _ in range(n)], rate, seed)
        self.per_packet = packets.samples_per_packet(mtu)
        plans = [schedule or random_schedule(rng) for _ in range(n)]
        self._cursors: list[Iterator[tuple[str, int]]] = [
            schedule_segments(plan, rate, loop=True) for plan in plans
        ]
        self._bouts = [_Bout(*next(c)) for c in self._cursors]
        self._seq = rng.integers(0, 1 << 16, n)  # devices start anywhere: exercises wrap-around
        self._clock_ms = rng.integers(0, 10_000_000, n).astype(np.int64)
        self._reps = np.full(n, -1)
        self._labels = [""] * n

    def labels(self) -> list[str]:
        """The label every device is doing now."""
        return [b.label for b in self._bouts]

    def step(self, n: int, now: float) -> tuple[list[tuple[str, bytes]], list[tuple]]:
        """Advance ``n`` samples; returns packets [(device, bytes)] and truth changes.

        Truth changes are (device, label, rep, time, until) with wall-clock times
        anchored so that the tick's last sample is at ``now``.
        """
        labels = self.labels()
        start_ms = self._clock_ms + np.int64(round(self.fleet.time * 1000))
        samples, reps = self.fleet.next_samples(labels, n)
        out: list[tuple[str, bytes]] = []
        for a in range(0, n, self.per_packet):
            b = min(n, a + self.per_packet)
            times = start_ms + round(a * 1000 / self.rate)
            for device, data in zip(
                self.devices,
                packets.encode_batched_many(samples[:, a:b], self._seq, times, self.rate),
                strict=True,
            ):
                out.append((device, data))
            self._seq = (self._seq + 1) & 0xFFFF
        truth = self._truth(labels, reps, now - (n - 1) / self.rate)
        self._advance(n)
        return out, truth

    def _truth(self, labels: list[str], reps: np.ndarray, t0: float) -> list[tuple]:
        changes = []
        last = reps[:, -1]
        for i in np.flatnonzero(
            (last != self._reps) | [a != b for a, b in zip(labels, self._labels, strict=True)]
        ):
            new_label = labels[i] != self._labels[i]
            step = np.flatnonzero(np.diff(reps[i]) > 0)
            at = t0 if new_label or not step.size else t0 + (step[-1] + 1) / self.rate
            until = t0 + self._bouts[i].remaining / self.rate
            changes.append((self.devices[i], labels[i], int(last[i]), at, until))
        self._reps = last.copy()
        self._labels = list(labels)
        return changes

    def _advance(self, n: int) -> None:
        for bout, cursor in zip(self._bouts, self._cursors, strict=True):
            bout.remaining -= n
            while bout.remaining <= 0:  # the bout ends within this tick: switch next tick
                label, count = next(cursor)
                bout.label, bout.remaining = label, bout.remaining + count


class SimSource:
    """Real-time pacing of a :class:`SimFleet` into the gateway's packet sink."""

    def __init__(
        self,
        core: GatewayCore,
        fleet: SimFleet,
        sink: Sink,
        *,
        tick: float = 0.2,
        truth: bool = True,
    ) -> None:
        self.core, self.fleet, self.sink = core, fleet, sink
        self.tick, self.truth = tick, truth
        self.lagged = 0  # samples skipped because the process fell behind
        for device in fleet.devices:
            core.add(DeviceLink(device, source="sim", rate=fleet.rate, address=None))

    async def run(self, stop: asyncio.Event) -> None:
        """Emit packets every tick until ``stop`` is set."""
        for link in self.core.links.values():
            if link.source == "sim":
                self.core.set_state(link, "connected")
        start, emitted = time.monotonic(), 0
        max_backlog = int(2 * self.fleet.rate)
        while not stop.is_set():
            due = int((time.monotonic() - start) * self.fleet.rate)
            n = due - emitted
            if n > max_backlog:  # the process fell behind: skip ahead instead of bursting
                self.lagged += n - max_backlog
                logger.warning("sim fell %d samples behind; skipping ahead", n - max_backlog)
                emitted, n = due - max_backlog, max_backlog
            if n > 0:
                self.emit(n, time.time())
                emitted += n
            next_at = start + (emitted + self.tick * self.fleet.rate) / self.fleet.rate
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
            except TimeoutError:
                pass
        for link in self.core.links.values():
            if link.source == "sim":
                self.core.set_state(link, "disconnected")

    def emit(self, n: int, now: float) -> None:
        """Generate ``n`` samples per device and hand their packets to the sink."""
        out, truth = self.fleet.step(n, now)
        for device, data in out:
            self.sink(device, data, now)
        if self.truth:
            for device, label, rep, at, until in truth:
                self.core.publish_truth(device, label, 0 if label == REST else rep, at, until)
