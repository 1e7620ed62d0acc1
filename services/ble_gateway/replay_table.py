"""Recorded tables -> per-device tracks for ``--source replay``, refusing what cannot be played.

Reads any Parquet file or (hive-partitioned) directory with the nine channel
columns ``acc_x..mag_z`` plus optional columns: a device column (``device``),
a group column (``session``), a label column (``label`` or ``activity``), an
order column (``index``/``seq``/``time``/``device_time``) and a time column
(``time``, seconds). Rows are grouped into devices (the ``device`` column, else
``replay-s<session>``), each device's recordings play back to back. Units: the
recorder writes default units (g, deg/s, uT); the seed-fitness layout (acc in
0.1 g, mag in 10 uT) is detected from the accelerometer magnitude or forced
with ``--units``.

A table is a file anyone may have written, so each row and device is checked
and a bad one is refused and counted (``reject``) while the rest plays:

* a device id that is not valid (full match, see ``validate_device_id``; a
  null one too) refuses its rows (``bad_device``); devices after the first
  ``--max-devices`` are refused (``too_many_devices``);
* rows with a NaN or infinite sample are dropped (``not_finite``);
* a label that is not a valid name (as the recorder's labels) gives no ground
  truth (``bad_label``);
* a time step that is not finite, goes back or is longer than :data:`MAX_GAP`
  plays as one sample period (``bad_time``), so a timestamp far in the future
  cannot stall a device;
* a device whose sample rate is outside (0, 10 000] Hz is refused (``bad_rate``).

What makes the whole table unusable (no channel columns, no rows, a column
that is not numeric, no playable device) raises ``ValueError``: a start-up error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from imu_har.protocol.codec import DEFAULT_CHANNELS, MAX_RATE_HZ
from imu_har.protocol.commands import validate_name
from imu_har.protocol.topics import validate_device_id

if TYPE_CHECKING:
    from services.ble_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

Reject = Callable[[str, str], None]
SEED_FITNESS_SCALE = np.array([0.1] * 3 + [1.0] * 3 + [10.0] * 3, dtype=np.float32)
# Sample rates of a table without a time column (unless --replay-rate says otherwise).
TABLE_RATE, SEED_FITNESS_RATE = 50.0, 2.0
# Longest pause played within one recording: a device never idles longer on a bad timestamp.
MAX_GAP = 600.0
NO_LABEL = ""  # a row whose label was refused: no ground truth
ORDER_COLUMNS = ("index", "seq", "time", "device_time")  # the first present orders a recording


@dataclass
class Track:
    """One replayed device: sample times (s from its start), samples, labels."""

    device: str
    times: np.ndarray
    samples: np.ndarray
    labels: np.ndarray | None  # NO_LABEL where the table's label was refused
    rate: float


def load_table(path: Path) -> pa.Table:
    """A Parquet file or a (hive-partitioned) directory of them."""
    if not path.exists():
        raise FileNotFoundError(f"replay file {path} does not exist")
    if path.is_dir():
        return ds.dataset(path, format="parquet", partitioning="hive").to_table()
    return ds.dataset(path, format="parquet").to_table()


def _log(reason: str, text: str) -> None:
    logger.warning("%s: %s", reason, text)


def build_tracks(table: pa.Table, settings: GatewaySettings, reject: Reject = _log) -> list[Track]:
    """Group a table into per-device tracks in playback order (units converted, bad rows out)."""
    missing = [c for c in DEFAULT_CHANNELS if c not in table.column_names]
    if missing:
        raise ValueError(f"replay table lacks channel columns {missing}")
    if table.num_rows == 0:
        raise ValueError("replay table has no rows")
    with np.errstate(over="ignore", invalid="ignore"):  # what overflows float32 is dropped below
        samples = np.stack([_numeric(table, c) for c in DEFAULT_CHANNELS], axis=1)
        samples = samples.astype(np.float32)
        seed_fitness = _is_seed_fitness(samples, settings.units)
        if seed_fitness:
            samples = samples * SEED_FITNESS_SCALE
    finite = np.isfinite(samples).all(axis=1)
    step = 1.0 / (settings.replay_rate or (SEED_FITNESS_RATE if seed_fitness else TABLE_RATE))
    devices, device_of = _device_ids(table, settings.renames(), reject)
    labels, label_code = _labels(table, reject)
    session_code = _codes(table, "session")[1] if "session" in table.column_names else None
    recording = _recording_keys(session_code, label_code)
    order_by = next((c for c in ORDER_COLUMNS if c in table.column_names), None)
    order = _numeric(table, order_by) if order_by else None
    times = _numeric(table, "time") if "time" in table.column_names else None
    tracks: list[Track] = []
    for rows in _groups(device_of):
        device = devices[device_of[rows[0]]] if device_of[rows[0]] >= 0 else None
        if device is None:  # the rows of refused ids (already counted)
            continue
        if len(tracks) >= settings.max_devices:
            reject("too_many_devices", f"replay device {device!r}: over {settings.max_devices}")
            continue
        bad = ~finite[rows]
        if bad.any():
            reject("not_finite", f"replay device {device!r}: {bad.sum()} rows of NaN/inf dropped")
            rows = rows[~bad]
        if len(rows):
            track = _track(device, rows, samples, labels, recording, order, times, step, reject)
            if track is not None:
                tracks.append(track)
    if not tracks:
        raise ValueError("replay table has no playable device (see the rejected counts)")
    return tracks


def _track(
    device: str,
    rows: np.ndarray,
    samples: np.ndarray,
    labels: np.ndarray | None,
    recording: np.ndarray | None,
    order: np.ndarray | None,
    times: np.ndarray | None,
    step: float,
    reject: Reject,
) -> Track | None:
    """One device's recordings back to back; ``None`` (counted) if its rate is absurd."""
    parts, spans, offset, fixed = [], [], 0.0, 0
    for sub in _groups(recording[rows]) if recording is not None else [np.arange(len(rows))]:
        rec = rows[sub]
        if order is not None:
            rec = rec[np.argsort(order[rec], kind="stable")]
        if times is not None:
            t, bad = playback_times(times[rec], step)
            fixed += bad
        else:
            t = np.arange(len(rec)) * step
        parts.append(rec)
        spans.append(t + offset)
        offset += float(t[-1]) + step
    if fixed:
        reject("bad_time", f"replay device {device!r}: {fixed} bad time steps played as one period")
    index, all_times = np.concatenate(parts), np.concatenate(spans)
    diffs = np.diff(all_times)
    positive = diffs[diffs > 0]
    rate = float(1 / np.median(positive)) if positive.size else 1.0 / step
    if not 0 < rate <= MAX_RATE_HZ:
        reject("bad_rate", f"replay device {device!r}: {rate:g} Hz is outside (0, {MAX_RATE_HZ:g}]")
        return None
    track_labels = labels[index] if labels is not None else None
    return Track(device, all_times, samples[index], track_labels, rate)


def playback_times(t: np.ndarray, step: float) -> tuple[np.ndarray, int]:
    """Times from 0 for one recording, and how many steps were bad.

    A step that is not finite, negative or longer than :data:`MAX_GAP` becomes
    the recording's typical step (``step`` if it has none).
    """
    t = np.asarray(t, dtype=np.float64)
    diffs = np.diff(t)
    bad = ~((diffs >= 0) & (diffs <= MAX_GAP))  # NaN compares False: bad
    if not bad.any() and np.isfinite(t[0]):
        return t - t[0], 0
    good = diffs[~bad & (diffs > 0)]
    diffs[bad] = float(np.median(good)) if good.size else step
    return np.concatenate([[0.0], np.cumsum(diffs)]), int(bad.sum())


def _numeric(table: pa.Table, name: str) -> np.ndarray:
    try:
        return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise ValueError(f"replay table column {name!r} is not numeric: {exc}") from None


def _codes(table: pa.Table, name: str) -> tuple[list[str | None], np.ndarray]:
    """Distinct values as text in order of first appearance, and each row's index (-1: null)."""
    try:
        encoded = pc.dictionary_encode(pc.cast(table.column(name).combine_chunks(), pa.string()))
    except pa.ArrowException as exc:
        raise ValueError(f"replay table column {name!r} is not text: {exc}") from None
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return encoded.dictionary.to_pylist(), codes


def _device_ids(
    table: pa.Table, renames: dict[str, str], reject: Reject
) -> tuple[list[str | None], np.ndarray]:
    """Valid device ids (None: refused) and each row's index into them (-1: refused or null)."""
    if "device" in table.column_names:
        raw, codes = _codes(table, "device")
        if (codes < 0).any():
            reject("bad_device", f"{int((codes < 0).sum())} replay rows have no device id")
    elif "session" in table.column_names:
        sessions, codes = _codes(table, "session")
        raw = [None if s is None else _session_id(s) for s in sessions]
    else:
        raw, codes = ["replay-01"], np.zeros(table.num_rows, dtype=np.int64)
    ids: list[str | None] = []
    for value in raw:
        device = renames.get(value, value) if value is not None else None
        try:
            ids.append(validate_device_id(device) if device is not None else None)
        except ValueError as exc:
            reject("bad_device", f"replay device {str(device)[:80]!r} refused: {exc}")
            ids.append(None)
    merged = {device: i for i, device in reversed(list(enumerate(ids))) if device is not None}
    remap = np.array([merged[d] if d is not None else -1 for d in ids] + [-1], dtype=np.int64)
    return ids, remap[codes]  # codes of -1 pick the trailing -1; renames may merge devices


def _labels(table: pa.Table, reject: Reject) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Each row's label (NO_LABEL when refused) and label code, or ``None`` without labels."""
    name = next((c for c in ("label", "activity") if c in table.column_names), None)
    if name is None:
        return None, None
    raw, codes = _codes(table, name)
    clean = []
    for value in raw:
        try:
            clean.append(validate_name(value) if value is not None else NO_LABEL)
        except ValueError as exc:
            reject("bad_label", f"replay label refused, no ground truth for its rows: {exc}")
            clean.append(NO_LABEL)
    # Fixed-width strings only once every label is known to be short (a hostile
    # megabyte label would otherwise be copied into every row).
    return np.array([*clean, NO_LABEL], dtype="<U64")[codes], codes


def _recording_keys(sessions: np.ndarray | None, labels: np.ndarray | None) -> np.ndarray | None:
    """One integer per row naming its recording (session and label), or ``None``."""
    if sessions is None and labels is None:
        return None
    if sessions is None or labels is None:
        return sessions if labels is None else labels
    return (sessions + 1) * (int(labels.max(initial=0)) + 2) + labels + 1


def _groups(keys: np.ndarray) -> list[np.ndarray]:
    """Row indices of each distinct key, groups in order of first appearance."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rows = np.argsort(inverse, kind="stable")
    groups = np.split(rows, np.cumsum(np.bincount(inverse))[:-1])
    return [groups[g] for g in np.argsort(first)]


def _is_seed_fitness(samples: np.ndarray, units: str) -> bool:
    if units != "auto":
        return units == "seed-fitness"
    acc = samples[np.isfinite(samples).all(axis=1), :3]
    return bool(len(acc)) and float(np.median(np.linalg.norm(acc, axis=1))) > 4.0


def _session_id(session: str) -> str:
    try:
        return f"replay-s{int(session):02d}"
    except ValueError:
        return "replay-" + "".join(c if c.isalnum() or c in "_-" else "_" for c in session)
