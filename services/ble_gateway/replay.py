"""``--source replay``: stream recorded tracks as live devices, at real time or N x.

The tracks come from :mod:`services.ble_gateway.replay_table` (which refuses
and counts what cannot be played). Replayed devices notify like simulated
ones: a frame holds whole notifications of one notification interval each
(``packet_interval``, by default the sim's 13 samples / 50 Hz = 0.26 s; 13
samples of a 50 Hz recording, one of a 2 Hz one, never more than a full
packet) and is published once its last sample is due. At ``--speed 1`` that is
one notification per frame; faster replays put every notification due at a
pacing tick into one frame, so a device never publishes more than one frame per
tick. A recording's last, partial notification is published when it ends.

Ground truth, like the sim's, goes out at most once per notification: the last
label change in it. A table whose label changes on every row cannot make a
device publish a QoS 1 message per sample.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from imu_har.protocol.codec import MAX_FRAME_SAMPLES
from services.ble_gateway import packets
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.link import DeviceLink
from services.ble_gateway.pacing import packet_samples
from services.ble_gateway.replay_table import NO_LABEL, Track

if TYPE_CHECKING:
    from services.ble_gateway.settings import GatewaySettings

__all__ = ["ReplaySource", "Track", "frame_end", "truth_changes"]

logger = logging.getLogger(__name__)

CHECK_INTERVAL = 0.1  # s: how often due notifications are looked for (or --tick if shorter)


def frame_end(times: np.ndarray, start: int, elapsed: float, packet: int) -> int:
    """End (exclusive) of the frame that starts at sample ``start``, ``elapsed`` s into a track.

    The frame holds the whole notifications of ``packet`` samples that are due
    (their last sample's time has passed; all the rest once the track has
    ended), at most :data:`MAX_FRAME_SAMPLES`. ``start`` when nothing is due.
    """
    due = int(np.searchsorted(times, elapsed, side="right"))
    end = len(times) if due >= len(times) else start + (due - start) // packet * packet
    return min(end, start + max(packet, MAX_FRAME_SAMPLES // packet * packet))


def truth_changes(labels: np.ndarray, before: str, packet: int) -> np.ndarray:
    """Indices of the label changes to publish: the last one in each ``packet`` of ``labels``.

    ``before`` is the label of the sample before ``labels[0]``.
    """
    previous = np.concatenate([[before], labels[:-1]])
    changed = np.flatnonzero(labels != previous)
    chunk = changed // packet
    return changed[np.append(chunk[1:] != chunk[:-1], True)] if changed.size else changed


class ReplaySource:
    """Plays tracks into the gateway core, paced by the recording's times / speed."""

    def __init__(self, core: GatewayCore, tracks: list[Track], settings: GatewaySettings) -> None:
        self.core, self.tracks, self.speed = core, tracks, settings.speed
        self.tick = min(settings.tick or CHECK_INTERVAL, CHECK_INTERVAL)
        self.loop, self.truth = settings.loop, settings.truth
        # Samples per notification of each track: one notification interval, at most a packet.
        interval = packet_samples(settings.mtu, settings.rate, settings.tick) / settings.rate
        packet_max = packets.samples_per_packet(settings.mtu)
        self.packets = [max(1, min(packet_max, round(interval * t.rate))) for t in tracks]
        self.finished = asyncio.Event()
        for track in tracks:
            core.add(DeviceLink(track.device, rate=track.rate, source="replay"))

    async def run(self, stop: asyncio.Event) -> None:
        """Play until every track ended (or forever with ``loop``) or ``stop``."""
        for link in self.core.links.values():
            self.core.set_state(link, "connected")
        while not stop.is_set():
            await self._play_once(stop)
            if not self.loop:
                break
        for track in self.tracks:
            self.core.set_state(self.core.links[track.device], "disconnected", error="replay ended")
        self.finished.set()

    def close(self) -> None:
        """Nothing to release: the tracks are in memory."""

    async def _play_once(self, stop: asyncio.Event) -> None:
        start = time.monotonic()
        cursors = dict.fromkeys(range(len(self.tracks)), 0)
        last_label: dict[int, str] = {}  # per track: at most one entry per device
        device_start = time.time()
        while cursors and not stop.is_set():
            elapsed = (time.monotonic() - start) * self.speed
            now = time.time()
            for i in list(cursors):
                track = self.tracks[i]
                a = cursors[i]
                b = frame_end(track.times, a, elapsed, self.packets[i])
                if b > a:
                    self._emit(i, track, a, b, now, device_start, last_label)
                    cursors[i] = b
                if b >= len(track.times):
                    del cursors[i]
            try:
                await asyncio.wait_for(stop.wait(), self.tick)
            except TimeoutError:
                pass

    def _emit(
        self,
        i: int,
        track: Track,
        a: int,
        b: int,
        now: float,
        t0: float,
        last_label: dict[int, str],
    ) -> None:
        link = self.core.links[track.device]
        self.core.publish_samples(link, track.samples[a:b], now, t0 + float(track.times[a]))
        if self.truth and track.labels is not None:
            labels = track.labels[a:b]
            for k in truth_changes(labels, last_label.get(i, NO_LABEL), self.packets[i]):
                if labels[k] != NO_LABEL:
                    at = t0 + float(track.times[a + k]) / self.speed
                    self.core.publish_truth(track.device, str(labels[k]), 0, at)
            last_label[i] = str(labels[-1])
