"""Compact binary encoding of raw frames and windows (docs/protocol.md, "Binary payloads").

Both payloads share one layout: a fixed little-endian header, optional channel
names and units (omitted when the default nine-channel layout is used), then
float32 samples in row-major order (sample by sample). Decoders check version,
kind, sizes, finiteness and bounds and raise :class:`PayloadError` only.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import validate_device_id

VERSION = 1
KIND_FRAME = ord("F")
KIND_WINDOW = ord("W")
FLAG_DEVICE_TIME = 0x01
FLAG_DEFAULT_LAYOUT = 0x02

DEFAULT_CHANNELS: tuple[str, ...] = (
    "acc_x",
    "acc_y",
    "acc_z",
    "gyro_x",
    "gyro_y",
    "gyro_z",
    "mag_x",
    "mag_y",
    "mag_z",
)
DEFAULT_UNITS: tuple[str, ...] = ("g",) * 3 + ("deg/s",) * 3 + ("uT",) * 3

MAX_CHANNELS = 32
MAX_FRAME_SAMPLES = 1024
MAX_WINDOW_SAMPLES = 4096
MAX_RATE_HZ = 10_000.0
MAX_PAYLOAD_BYTES = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9_./%\-]{1,32}")  # full match: "$" allows a trailing newline

PREFIX = struct.Struct("<BBBB")  # version, kind, flags, device id length
FRAME_HEAD = struct.Struct(
    "<Iddf BH".replace(" ", "")
)  # seq, device_time, receive_time, rate, C, N
WINDOW_HEAD = struct.Struct(
    "<Idddf BH".replace(" ", "")
)  # seq, start, end, source_time, rate, C, N


@dataclass(frozen=True)
class Frame:
    """One or more consecutive samples of one device, as published on ``<root>/<device>/imu``.

    ``samples`` has shape (n_samples, n_channels), float32. ``device_time`` is the
    device clock (seconds) of the first sample when the packet carried one;
    ``receive_time`` is the gateway's Unix time when the packet arrived (always set).
    """

    device: str
    seq: int
    receive_time: float
    rate: float
    samples: np.ndarray
    device_time: float | None = None
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    units: tuple[str, ...] = DEFAULT_UNITS


@dataclass(frozen=True)
class Window:
    """A fixed-length, uniformly resampled window as published on ``<root>/<device>/window``.

    ``start``/``end`` are the times of the first and last sample (Unix seconds on
    the device's wall-clock-anchored timeline); ``source_time`` is the receive
    time of the newest frame that contributed, for end-to-end latency.
    """

    device: str
    seq: int
    start: float
    end: float
    rate: float
    samples: np.ndarray
    source_time: float = 0.0
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    units: tuple[str, ...] = DEFAULT_UNITS


def encode_frame(frame: Frame) -> bytes:
    """Encode a :class:`Frame`; raises :class:`PayloadError` if it is not valid."""
    samples = _check_samples(frame.samples, len(frame.channels), MAX_FRAME_SAMPLES)
    _check_layout(frame.channels, frame.units)
    _check_time("receive_time", frame.receive_time)
    _check_rate(frame.rate)
    flags = 0
    if frame.device_time is not None:
        _check_time("device_time", frame.device_time)
        flags |= FLAG_DEVICE_TIME
    head = FRAME_HEAD.pack(
        frame.seq & 0xFFFFFFFF,
        frame.device_time or 0.0,
        frame.receive_time,
        frame.rate,
        samples.shape[1],
        samples.shape[0],
    )
    return _assemble(KIND_FRAME, flags, frame.device, head, frame.channels, frame.units, samples)


def encode_window(window: Window) -> bytes:
    """Encode a :class:`Window`; raises :class:`PayloadError` if it is not valid."""
    samples = _check_samples(window.samples, len(window.channels), MAX_WINDOW_SAMPLES)
    _check_layout(window.channels, window.units)
    _check_window_times(window.start, window.end, window.source_time)
    _check_rate(window.rate)
    head = WINDOW_HEAD.pack(
        window.seq & 0xFFFFFFFF,
        window.start,
        window.end,
        window.source_time,
        window.rate,
        samples.shape[1],
        samples.shape[0],
    )
    return _assemble(KIND_WINDOW, 0, window.device, head, window.channels, window.units, samples)


def decode_frame(payload: bytes) -> Frame:
    """Decode a raw-frame payload or raise :class:`PayloadError` saying what is wrong."""
    flags, device, offset = _read_prefix(payload, KIND_FRAME)
    seq, device_time, receive_time, rate, n_ch, n = _unpack(FRAME_HEAD, payload, offset)
    _check_counts(n_ch, n, MAX_FRAME_SAMPLES)
    channels, units, offset = _read_layout(payload, offset + FRAME_HEAD.size, flags, n_ch)
    samples = _read_samples(payload, offset, n, n_ch)
    _check_time("receive_time", receive_time)
    _check_rate(rate)
    has_device_time = bool(flags & FLAG_DEVICE_TIME)
    if has_device_time:
        _check_time("device_time", device_time)
    return Frame(
        device=device,
        seq=seq,
        receive_time=receive_time,
        rate=rate,
        samples=samples,
        device_time=device_time if has_device_time else None,
        channels=channels,
        units=units,
    )


def decode_window(payload: bytes) -> Window:
    """Decode a window payload or raise :class:`PayloadError` saying what is wrong."""
    flags, device, offset = _read_prefix(payload, KIND_WINDOW)
    seq, start, end, source_time, rate, n_ch, n = _unpack(WINDOW_HEAD, payload, offset)
    _check_counts(n_ch, n, MAX_WINDOW_SAMPLES)
    channels, units, offset = _read_layout(payload, offset + WINDOW_HEAD.size, flags, n_ch)
    samples = _read_samples(payload, offset, n, n_ch)
    _check_window_times(start, end, source_time)
    _check_rate(rate)
    return Window(
        device=device,
        seq=seq,
        start=start,
        end=end,
        rate=rate,
        samples=samples,
        source_time=source_time,
        channels=channels,
        units=units,
    )


def _assemble(
    kind: int,
    flags: int,
    device: str,
    head: bytes,
    channels: tuple[str, ...],
    units: tuple[str, ...],
    samples: np.ndarray,
) -> bytes:
    device_bytes = validate_device_id(device).encode("ascii")
    default = channels == DEFAULT_CHANNELS and units == DEFAULT_UNITS
    parts = [
        PREFIX.pack(
            VERSION, kind, flags | (FLAG_DEFAULT_LAYOUT if default else 0), len(device_bytes)
        ),
        device_bytes,
        head,
    ]
    if not default:
        for name in (*channels, *units):
            raw = name.encode("ascii")
            parts += [bytes([len(raw)]), raw]
    parts.append(np.ascontiguousarray(samples, dtype="<f4").tobytes())
    return b"".join(parts)


def _read_prefix(payload: bytes, kind: int) -> tuple[int, str, int]:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise PayloadError("bad_type", "payload must be bytes")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            "too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}"
        )
    if len(payload) < PREFIX.size:
        raise PayloadError("truncated", f"payload of {len(payload)} bytes is shorter than a header")
    version, got_kind, flags, id_len = PREFIX.unpack_from(payload, 0)
    if version != VERSION:
        raise PayloadError("bad_version", f"payload version {version}, expected {VERSION}")
    if got_kind != kind:
        raise PayloadError("bad_kind", f"payload kind {got_kind:#x}, expected {kind:#x}")
    end = PREFIX.size + id_len
    if len(payload) < end:
        raise PayloadError("truncated", "payload ends inside the device id")
    try:
        device = bytes(payload[PREFIX.size : end]).decode("ascii")
    except UnicodeDecodeError as exc:
        raise PayloadError("bad_device", "device id is not ASCII") from exc
    return flags, validate_device_id(device), end


def _unpack(head: struct.Struct, payload: bytes, offset: int) -> tuple:
    if len(payload) < offset + head.size:
        raise PayloadError("truncated", "payload ends inside the header")
    return head.unpack_from(payload, offset)


def _read_layout(
    payload: bytes, offset: int, flags: int, n_ch: int
) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    if flags & FLAG_DEFAULT_LAYOUT:
        if n_ch != len(DEFAULT_CHANNELS):
            raise PayloadError("bad_shape", f"default layout has 9 channels, header says {n_ch}")
        return DEFAULT_CHANNELS, DEFAULT_UNITS, offset
    names: list[str] = []
    for _ in range(2 * n_ch):
        if offset >= len(payload):
            raise PayloadError("truncated", "payload ends inside the channel names")
        size = payload[offset]
        raw = bytes(payload[offset + 1 : offset + 1 + size])
        if len(raw) != size:
            raise PayloadError("truncated", "payload ends inside a channel name")
        names.append(raw.decode("ascii", errors="replace"))
        offset += 1 + size
    channels, units = tuple(names[:n_ch]), tuple(names[n_ch:])
    _check_layout(channels, units)
    return channels, units, offset


def _read_samples(payload: bytes, offset: int, n: int, n_ch: int) -> np.ndarray:
    expected = n * n_ch * 4
    if len(payload) - offset != expected:
        reason = "truncated" if len(payload) - offset < expected else "trailing_bytes"
        raise PayloadError(reason, f"expected {expected} sample bytes, got {len(payload) - offset}")
    samples = np.frombuffer(payload, dtype="<f4", count=n * n_ch, offset=offset).reshape(n, n_ch)
    if not np.isfinite(samples).all():
        raise PayloadError("not_finite", "samples contain NaN or infinity")
    return samples.astype(np.float32, copy=False)


def _check_samples(samples: np.ndarray, n_ch: int, max_n: int) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != n_ch:
        raise PayloadError("bad_shape", f"samples shape {array.shape} does not fit {n_ch} channels")
    _check_counts(n_ch, array.shape[0], max_n)
    if not np.isfinite(array).all():
        raise PayloadError("not_finite", "samples contain NaN or infinity")
    return array


def _check_counts(n_ch: int, n: int, max_n: int) -> None:
    if not 1 <= n_ch <= MAX_CHANNELS:
        raise PayloadError("bad_shape", f"{n_ch} channels, allowed 1..{MAX_CHANNELS}")
    if not 1 <= n <= max_n:
        raise PayloadError("bad_shape", f"{n} samples, allowed 1..{max_n}")


@lru_cache(maxsize=1024)
def _check_layout(channels: tuple[str, ...], units: tuple[str, ...]) -> None:
    if len(channels) != len(units):
        raise PayloadError("bad_shape", "channels and units differ in number")
    if len(set(channels)) != len(channels):
        raise PayloadError("bad_channels", "channel names repeat")
    for name in (*channels, *units):
        if not _NAME.fullmatch(name):
            raise PayloadError("bad_channels", f"channel or unit name {name[:40]!r} is not allowed")


def _check_time(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise PayloadError("bad_time", f"{name} {value!r} is not a finite, non-negative time")


def _check_window_times(start: float, end: float, source_time: float) -> None:
    for name, value in (("start", start), ("end", end), ("source_time", source_time)):
        _check_time(name, value)
    if end < start:
        raise PayloadError("bad_time", "window end is before its start")


def _check_rate(rate: float) -> None:
    if not math.isfinite(rate) or not 0 < rate <= MAX_RATE_HZ:
        raise PayloadError("bad_rate", f"sample rate {rate!r} Hz is outside (0, {MAX_RATE_HZ:g}]")
