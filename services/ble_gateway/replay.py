"""``--source replay``: stream a recorded table as live devices, at real time or N x.

Reads any Parquet file or (hive-partitioned) directory with the nine channel
columns ``acc_x..mag_z`` plus optional columns: a device column (``device``),
a group column (``session``), a label column (``label`` or ``activity``), an
order column (``index``/``seq``) and a time column (``time``, seconds). Rows are
grouped into devices (the ``device`` column, else ``replay-s<session>``), each
device's recordings play back to back. Units: the recorder writes default
units (g, deg/s, uT); the seed-fitness layout (acc in 0.1 g, mag in 10 uT) is
detected from the accelerometer magnitude or forced with ``--units``.

Replayed devices notify like simulated ones: a frame holds whole
notifications of one notification interval each (``packet_interval``, by
default the sim's 13 samples / 50 Hz = 0.26 s; 13 samples of a 50 Hz
recording, one of a 2 Hz one, never more than a full packet) and is published
once its last sample is due. At ``--speed 1`` that is one notification per
frame; faster replays put every notification due at a pacing tick into one
frame, so a device never publishes more than one frame per tick. A
recording's last, partial notification is published when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from imu_har.protocol.codec import DEFAULT_CHANNELS, MAX_FRAME_SAMPLES
from imu_har.protocol.topics import validate_device_id
from services.ble_gateway.core import DeviceLink, GatewayCore

logger = logging.getLogger(__name__)

SEED_FITNESS_SCALE = np.array([0.1] * 3 + [1.0] * 3 + [10.0] * 3, dtype=np.float32)


@dataclass
class Track:
    """One replayed device: sample times (s from its start), samples, labels."""

    device: str
    times: np.ndarray
    samples: np.ndarray
    labels: np.ndarray | None
    rate: float


def load_table(path: Path) -> pa.Table:
    """A Parquet file or a (hive-partitioned) directory of them."""
    if not path.exists():
        raise FileNotFoundError(f"replay file {path} does not exist")
    if path.is_dir():
        return ds.dataset(path, format="parquet", partitioning="hive").to_table()
    return ds.dataset(path, format="parquet").to_table()


def build_tracks(
    table: pa.Table,
    *,
    units: str = "auto",
    rate: float | None = None,
    device_map: dict[str, str] | None = None,
) -> list[Track]:
    """Group a table into per-device tracks in playback order (units converted)."""
    missing = [c for c in DEFAULT_CHANNELS if c not in table.column_names]
    if missing:
        raise ValueError(f"replay table lacks channel columns {missing}")
    if table.num_rows == 0:
        raise ValueError("replay table has no rows")
    col = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    samples = np.stack([col[c] for c in DEFAULT_CHANNELS], axis=1).astype(np.float32)
    seed_fitness = _is_seed_fitness(samples, units)
    if seed_fitness:
        samples = samples * SEED_FITNESS_SCALE
    step = 1.0 / (rate or (2.0 if seed_fitness else 50.0))
    devices = _device_ids(col, table.num_rows, device_map or {})
    label_col = next((c for c in ("label", "activity") if c in col), None)
    labels = col[label_col].astype(str) if label_col else None
    recording = [col[c].astype(str) for c in ("session", label_col) if c and c in col]
    order = next((col[c] for c in ("index", "seq", "time", "device_time") if c in col), None)
    tracks = []
    for rows in _groups(devices):
        keys = np.array(["\0".join(k) for k in zip(*(r[rows] for r in recording), strict=True)])
        parts, times, offset = [], [], 0.0
        for sub in _groups(keys) if recording else [np.arange(len(rows))]:
            rec = rows[sub]
            if order is not None:
                rec = rec[np.argsort(order[rec], kind="stable")]
            t = col["time"][rec].astype(float) if "time" in col else np.arange(len(rec)) * step
            t = t - t[0] + offset
            parts.append(rec)
            times.append(t)
            offset = float(t[-1]) + step
        index, all_times = np.concatenate(parts), np.concatenate(times)
        diffs = np.diff(all_times)
        positive = diffs[diffs > 0]
        track_rate = float(1 / np.median(positive)) if positive.size else 1.0 / step
        track_labels = labels[index] if labels is not None else None
        tracks.append(
            Track(str(devices[rows[0]]), all_times, samples[index], track_labels, track_rate)
        )
    return tracks


def _groups(keys: np.ndarray) -> list[np.ndarray]:
    """Row indices of each distinct key, groups in order of first appearance."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rows = np.argsort(inverse, kind="stable")
    groups = np.split(rows, np.cumsum(np.bincount(inverse))[:-1])
    return [groups[g] for g in np.argsort(first)]


def _is_seed_fitness(samples: np.ndarray, units: str) -> bool:
    if units != "auto":
        return units == "seed-fitness"
    magnitude = np.linalg.norm(samples[:, :3], axis=1)
    return bool(len(magnitude)) and float(np.median(magnitude)) > 4.0


def _device_ids(col: dict[str, np.ndarray], n: int, device_map: dict[str, str]) -> np.ndarray:
    if "device" in col:
        raw = col["device"].astype(str)
    elif "session" in col:
        raw = np.array([_session_id(s) for s in col["session"]])
    else:
        raw = np.full(n, "replay-01")
    mapped = np.array([device_map.get(d, d) for d in raw])
    for device in np.unique(mapped):
        validate_device_id(str(device))
    return mapped


def _session_id(session: object) -> str:
    try:
        return f"replay-s{int(session):02d}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "replay-" + "".join(c if c.isalnum() or c in "_-" else "_" for c in str(session))


def frame_end(times: np.ndarray, start: int, elapsed: float, packet: int) -> int:
    """End (exclusive) of the frame that starts at sample ``start``, ``elapsed`` s into a track.

    The frame holds the whole notifications of ``packet`` samples that are due
    (their last sample's time has passed; all the rest once the track has
    ended), at most :data:`MAX_FRAME_SAMPLES`. ``start`` when nothing is due.
    """
    due = int(np.searchsorted(times, elapsed, side="right"))
    end = len(times) if due >= len(times) else start + (due - start) // packet * packet
    return min(end, start + max(packet, MAX_FRAME_SAMPLES // packet * packet))


class ReplaySource:
    """Plays tracks into the gateway core, paced by the recording's times / speed."""

    def __init__(
        self,
        core: GatewayCore,
        tracks: list[Track],
        *,
        speed: float = 1.0,
        tick: float = 0.1,
        loop: bool = False,
        truth: bool = True,
        packet_interval: float = 13 / 50.0,
        packet_max: int = 13,
    ) -> None:
        self.core, self.tracks, self.speed = core, tracks, speed
        self.tick, self.loop, self.truth = tick, loop, truth
        # Samples per notification of each track: one notification interval, at most a packet.
        self.packets = [max(1, min(packet_max, round(packet_interval * t.rate))) for t in tracks]
        self.finished = asyncio.Event()
        for track in tracks:
            core.add(DeviceLink(track.device, source="replay", rate=track.rate))

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

    async def _play_once(self, stop: asyncio.Event) -> None:
        start = time.monotonic()
        cursors = dict.fromkeys(range(len(self.tracks)), 0)
        last_label: dict[int, str] = {}
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
            before = np.concatenate([[last_label.get(i, "")], labels[:-1]])
            for k in np.flatnonzero(labels != before):
                at = t0 + float(track.times[a + k]) / self.speed
                self.core.publish_truth(track.device, str(labels[k]), 0, at)
            last_label[i] = str(labels[-1])
