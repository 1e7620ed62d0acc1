"""``--source sim``: many virtual wearables that emit real batched BLE packets.

Like the firmware, a simulated wearable notifies when its packet is full: a
packet holds as many samples as fit the ATT MTU (13 at 247), so every
``<root>/<device>/imu`` frame is one full notification, one every 13 / 50 Hz =
0.26 s. The wearables are not phase-locked: device ``i`` of ``n`` has the phase
``p = i * packet // n`` samples and its packets cover its samples ``[packet * m
+ p, packet * (m + 1) + p)``, so an equal share of a large fleet notifies at
every sample period instead of all at once. An explicit ``tick`` makes all
wearables notify together (phase 0) every ``tick`` s (``tick x rate`` samples
per packet, at most a full one).

Samples are generated for all devices together (vectorized
:class:`imu_har.sim.simulation.WearableFleet`) one packet-sized block at a time, at
most one block ahead; the packets that end in a block are encoded together for
all devices, and each is handed to the sink (the queue and decoder BLE
notifications take) once its last sample is due. Each device follows its own
exercise schedule (scripted or random, looped); its ground truth goes out with
the packet in which its label or repetition count changes.

``--sim-style realistic`` plays realistic sets (:mod:`imu_har.sim.realism`):
getting into position, uneven and partial repetitions, pauses, fatigue. An
exercise bout then lasts until its planned repetitions are done plus
:data:`TAIL` seconds standing still (a scripted bout's seconds are ignored, as
in :func:`imu_har.sim.workouts.play_workout`); the random schedule is a
:func:`~imu_har.sim.workouts.random_workout`. The repetition count of the
truth rises in the packet holding each repetition's end, and its ``time`` is
that end (to a sample).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from imu_har.sim.simulation import (
    LABELS,
    REST,
    WearableFleet,
    label_index,
    parse_schedule,
    random_profile,
    random_schedule,
    schedule_segments,
)
from imu_har.sim.workouts import random_workout
from services.ble_gateway import packets
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.link import DeviceLink
from services.ble_gateway.pacing import MAX_BACKLOG, Pacer, packet_samples

if TYPE_CHECKING:
    from services.ble_gateway.settings import GatewaySettings

__all__ = ["MAX_BACKLOG", "Pacer", "SimFleet", "SimSource", "packet_samples"]

logger = logging.getLogger(__name__)

Sink = Callable[[str, bytes, float], object]
# A ground-truth change: device, label, rep, first sample of it, scheduled end (stream indices).
Truth = tuple[str, str, int, int, int]
TAIL = 1.0  # s standing still after a realistic set's last repetition (as play_workout)


@dataclass
class _Bout:
    label: str
    remaining: int  # samples left in this bout
    fresh: bool = True  # started with the next block: a realistic one is fitted to its plan


def realistic_schedule(rng: np.random.Generator) -> list[tuple[str, float]]:
    """A random realistic session (8 sets and their rests, looped by the fleet).

    An exercise step's seconds are a placeholder (the bout is fitted to its plan):
    a zero-second step would yield no bout at all.
    """
    return [(label, seconds or 1.0) for label, seconds in random_workout(rng)]


class SimFleet:
    """N simulated wearables with staggered phases: packets per phase group, truth changes.

    Positions are stream sample indices: sample ``k`` of every device is taken
    at the same time; device ``i`` sends its samples from ``phases[i]`` on.
    """

    def __init__(self, settings: GatewaySettings, *, start_seq: int | None = None) -> None:
        n, rate, tick = settings.devices, settings.rate, settings.tick
        schedule = parse_schedule(settings.schedule) if settings.schedule else None
        rng = np.random.default_rng(settings.seed)
        self.rate = rate
        self.realistic = settings.sim_style == "realistic"
        self.devices = [f"{settings.device_prefix}-{i + 1:03d}" for i in range(n)]
        profiles = [random_profile(rng) for _ in range(n)]
        self.fleet = WearableFleet(profiles, rate, settings.seed, settings.sim_style)
        self.per_packet = packet_samples(settings.mtu, rate, tick)
        draw = realistic_schedule if self.realistic else random_schedule
        plans = [schedule or draw(rng) for _ in range(n)]
        self._cursors: list[Iterator[tuple[str, int]]] = [
            schedule_segments(plan, rate, loop=True) for plan in plans
        ]
        self._bouts = [_Bout(*next(c)) for c in self._cursors]
        # Devices start anywhere in the sequence space, which exercises the wrap-around.
        self._seq = rng.integers(0, 1 << 16, n)
        if start_seq is not None:
            self._seq[:] = start_seq
        self._clock_ms = rng.integers(0, 10_000_000, n).astype(np.int64)
        # Phases rise with the device index, so a phase group is a slice of devices.
        self.phases = np.arange(n) * self.per_packet // max(n, 1)
        if tick is not None:
            self.phases[:] = 0  # an explicit tick: everyone notifies together
        self._groups = {
            int(p): slice(*np.searchsorted(self.phases, [p, p + 1])) for p in np.unique(self.phases)
        }
        # Per generated block every device has one packet ending in it: at ``start`` samples
        # into the block, i.e. columns ``start .. start + packet - 1`` of (previous, new) block.
        k = self.per_packet
        self._start = np.where(self.phases > 0, self.phases, k)
        self._cols = self._start[:, None] + np.arange(k)
        self._generated = 0  # stream samples generated for every device
        # The previous block (samples, reps, label codes, scheduled bout ends); none at first.
        self._previous = [np.zeros((n, k, 9), np.float32), *(np.full((n, k), -1),) * 3]
        self._out: list[bytes] = []  # per device: its packet that ends in the last block
        self._truths: dict[int, list[Truth]] = {}  # per phase: truth changes in those packets
        self._last_label = np.full(n, -1)
        self._last_rep = np.full(n, -1)

    def packets(self, end: int) -> tuple[list[tuple[str, bytes]], list[Truth]]:
        """The packets that are full once stream sample ``end - 1`` is taken, and truth changes.

        Those are the packets ``[end - per_packet, end)`` of the devices whose
        phase is ``end % per_packet`` (none before the first full packet).
        Call with increasing ``end``. Returns [(device, bytes)] and the truth
        changes within these packets: (device, label, rep, at, until) where
        ``at`` is the stream index of the first sample of the new label or
        repetition and ``until`` that of the scheduled end of the bout.
        """
        phase = end % self.per_packet
        group = self._groups.get(phase)
        if group is None or end < self.per_packet:
            return [], []
        while self._generated < end:
            self._generate()
        if end <= self._generated - self.per_packet:
            raise ValueError(f"packets ending at {end} were already dropped (call in order)")
        out = list(zip(self.devices[group], self._out[group], strict=True))
        return out, self._truths.get(phase, [])

    def _generate(self) -> None:
        """Generate the next block for every device; encode the packets that end in it."""
        n, k0 = self.per_packet, self._generated
        labels = [b.label for b in self._bouts]
        codes = np.array([label_index(x) for x in labels])
        samples, reps = self.fleet.next_samples(labels, n)
        if self.realistic:
            self._fit_bouts(k0)
        until = k0 + np.array([b.remaining for b in self._bouts])
        block = [samples, reps, np.repeat(codes[:, None], n, 1), np.repeat(until[:, None], n, 1)]
        rows = np.arange(len(self.devices))[:, None]
        own = [
            np.concatenate([old, new], axis=1)[rows, self._cols]
            for old, new in zip(self._previous, block, strict=True)
        ]
        self._previous = block
        first = k0 + self._start - n  # stream index of each device's packet's first sample
        valid = first >= 0  # a device sends from its phase on
        times = self._clock_ms + np.rint(first * 1000 / self.rate).astype(np.int64)
        self._out = packets.encode_batched_many(own[0], self._seq, times, self.rate)
        self._seq = np.where(valid, (self._seq + 1) & 0xFFFF, self._seq)
        self._truths = self._truth(own, first, valid)
        self._generated += n
        self._advance(n)

    def _truth(
        self, own: list[np.ndarray], first: np.ndarray, valid: Any
    ) -> dict[int, list[Truth]]:
        """Truth changes in every device's packet (``own``: as the buffers), per phase."""
        reps, codes, until = own[1], own[2], own[3][:, -1]
        codes_ = np.concatenate([self._last_label[:, None], codes], axis=1)
        reps_ = np.concatenate([self._last_rep[:, None], reps], axis=1)
        switched = codes_[:, 1:] != codes_[:, :-1]
        counted = reps_[:, 1:] > reps_[:, :-1]

        def last(mask: np.ndarray) -> np.ndarray:  # index of the last True per row, else 0
            return np.where(mask.any(1), mask.shape[1] - 1 - np.argmax(mask[:, ::-1], 1), 0)

        new_label = switched.any(1)
        at = np.where(new_label, last(switched), last(counted)) + first
        changed = np.flatnonzero(valid & (new_label | (reps[:, -1] != self._last_rep)))
        self._last_label = np.where(valid, codes[:, -1], self._last_label)
        self._last_rep = np.where(valid, reps[:, -1], self._last_rep)
        out: dict[int, list[Truth]] = {}
        for j in changed:
            change = (self.devices[j], LABELS[codes[j, -1]], int(reps[j, -1]), int(at[j]))
            out.setdefault(int(self.phases[j]), []).append((*change, int(until[j])))
        return out

    def _fit_bouts(self, k0: int) -> None:
        """Realistic exercise bouts that started at ``k0`` last until their reps are done."""
        for i, bout in enumerate(self._bouts):
            if not bout.fresh:
                continue
            bout.fresh = False
            plan = self.fleet.plans[i]
            if bout.label == REST or plan is None or not plan.counted.any():
                continue
            end = math.ceil((float(plan.rep_ends[-1]) + TAIL) * self.rate)  # fleet sample index
            bout.remaining = max(end - k0, self.per_packet)

    def _advance(self, n: int) -> None:
        for bout, cursor in zip(self._bouts, self._cursors, strict=True):
            bout.remaining -= n
            while bout.remaining <= 0:  # the bout ended within this block: switch now
                label, count = next(cursor)
                bout.label, bout.remaining = label, bout.remaining + count
                bout.fresh = True


class SimSource:
    """Real-time pacing of a :class:`SimFleet` into the gateway's packet sink."""

    def __init__(
        self,
        core: GatewayCore,
        fleet: SimFleet,
        sink: Sink,
        settings: GatewaySettings,
    ) -> None:
        self.core, self.fleet, self.sink = core, fleet, sink
        self.truth = settings.truth
        self.pacer = Pacer(fleet.rate, fleet.per_packet, np.unique(fleet.phases), settings.tick)
        for device in fleet.devices:
            core.add(DeviceLink(device, source="sim", rate=fleet.rate, address=None))

    @property
    def lagged(self) -> int:
        """Samples skipped because the process fell behind."""
        return self.pacer.lagged

    async def run(self, stop: asyncio.Event) -> None:
        """Emit every packet as soon as it is full (see :class:`Pacer`) until ``stop`` is set."""
        for link in self.core.links.values():
            if link.source == "sim":
                self.core.set_state(link, "connected")
        start = time.monotonic()
        while not stop.is_set():
            elapsed = time.monotonic() - start
            self.step(elapsed, time.time())
            delay = max(0.0, start + self.pacer.next_wake(elapsed) - time.monotonic())
            if delay <= 0.3:  # a plain sleep costs fewer loop iterations (50 wakes/s)
                await asyncio.sleep(delay)
                continue
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
        for link in self.core.links.values():
            if link.source == "sim":
                self.core.set_state(link, "disconnected")

    def close(self) -> None:
        """Nothing to release: the fleet is in memory."""

    def step(self, elapsed: float, now: float) -> int:
        """Send the packets full at ``elapsed`` s since the start (wall clock ``now``); count."""
        lagged = self.pacer.lagged
        lo, hi = self.pacer.ready(elapsed)
        if self.pacer.lagged > lagged:
            logger.warning("sim fell %d samples behind; skipping ahead", self.pacer.lagged - lagged)
        return self.emit(self.pacer.ends(lo, hi), hi, now)

    def emit(self, ends: Iterable[int], taken: int, now: float) -> int:
        """Hand the packets ending at ``ends`` to the sink at ``now``; returns how many.

        ``taken`` stream samples have been taken by ``now``, so sample ``k`` was
        taken ``(taken - 1 - k) / rate`` before it; ground-truth times follow
        the samples (the global sample timeline, whatever a device's phase).
        """
        count, rate = 0, self.fleet.rate
        t0 = now - (taken - 1) / rate  # when stream sample 0 was taken
        for end in ends:
            out, truth = self.fleet.packets(end)
            for device, data in out:
                self.sink(device, data, now)
            count += len(out)
            if self.truth:
                for device, label, rep, at, until in truth:
                    rep = 0 if label == REST else rep
                    self.core.publish_truth(device, label, rep, t0 + at / rate, t0 + until / rate)
        return count
