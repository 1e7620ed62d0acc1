"""A phone's separate sensor streams -> frames on one sample timeline, in our units.

Sensor Logger sends every sensor as its own stream with its own times and rate
(iPhone about 100 Hz; Android 70-200 Hz, the magnetometer often slower). Our
frames hold one sample per time, so per batch:

1. Units (UNITS.md): acceleration m/s^2 -> g (/ 9.80665), rad/s -> deg/s, uT as is.
2. Acceleration with gravity, as every MPU-style IMU (and our models) see it:
   Android's ``totalacceleration`` when the batch has it; otherwise the
   ``accelerometer`` (gravity removed) plus ``gravity``, matched by time. With
   ``ios_native`` (an iPhone streaming with "Standardise Units & Frames" off,
   COORDINATES.md) both are negated first: iOS reports inertial force, the
   opposite sign of Android's. An accelerometer without gravity is no
   acceleration we can use: the frames then carry no ``acc_*`` channels
   (``acceleration`` = ``none``), rather than values a model would misread.
3. The timeline is the acceleration's sample times (else the gyroscope's, else
   the magnetometer's); the other streams are linearly interpolated onto it,
   using the last reading of the previous batch too. A stream that does not
   cover the timeline to within ``hold`` seconds at either end is left out of
   this batch's frames: a phone without a magnetometer sends frames without
   ``mag_*``.
4. Frames: the timeline is cut where readings pause (a step over four times the
   median step and 0.1 s) and into pieces of at most 1,024 samples and
   :data:`MAX_FRAME_SECONDS`; each piece's device time is its first sample's
   time and its rate is its own sample count over its span, so its first and
   last samples are placed exactly (the windower resamples the rest).

Samples at or before the last one published are dropped (a batch that repeats
readings). Pure module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imu_har.protocol.codec import MAX_FRAME_SAMPLES
from services.ble_gateway.phone.schema import PhoneBatch, Stream

G = 9.80665  # m/s^2 per g, as Sensor Logger assumes (UNITS.md)
DEG_PER_RAD = 180.0 / np.pi
DEFAULT_RATE = 100.0  # Hz of a one-sample piece before any rate was measured
MAX_FRAME_SECONDS = 5.0  # well inside the windower's --max-frame-seconds (10)
ACC = (("acc_x", "acc_y", "acc_z"), ("g",) * 3)
GYRO = (("gyro_x", "gyro_y", "gyro_z"), ("deg/s",) * 3)
MAG = (("mag_x", "mag_y", "mag_z"), ("uT",) * 3)
SCALE = {
    "totalacceleration": 1 / G,
    "accelerometer": 1 / G,
    "gravity": 1 / G,
    "gyroscope": DEG_PER_RAD,
    "magnetometer": 1.0,
}


@dataclass(frozen=True)
class Piece:
    """One frame's samples: device time (s) of the first, rate (Hz), samples (n, C) float32."""

    device_time: float
    rate: float
    samples: np.ndarray


@dataclass(frozen=True)
class Aligned:
    """A batch on the phone's timeline: its frames, their layout, the acceleration used."""

    pieces: list[Piece]
    channels: tuple[str, ...]
    units: tuple[str, ...]
    acceleration: str


class PhoneTimeline:
    """One phone's alignment state: the last reading of every stream, the last time sent."""

    def __init__(self, *, ios_native: bool = False, hold: float = 0.25) -> None:
        self.ios_native = ios_native
        self.hold_ns = int(hold * 1e9)
        self.carry: dict[str, tuple[int, np.ndarray]] = {}  # stream -> (time ns, values)
        self.last_ns: int | None = None
        self.rate: float | None = None

    def reset(self) -> None:
        """A new recording: forget the previous one's readings and times."""
        self.carry.clear()
        self.last_ns, self.rate = None, None

    def push(self, batch: PhoneBatch) -> Aligned | None:
        """The batch's frames, or None when it holds no new motion sample."""
        streams = self._converted(batch.streams)
        acc, kind = self._acceleration(streams)
        master = acc if acc is not None else streams.get("gyroscope") or streams.get("magnetometer")
        for name, stream in streams.items():
            self.carry[name] = (int(stream.times[-1]), stream.values[-1])
        if master is None:
            return None
        fresh = master.times > (self.last_ns if self.last_ns is not None else -1)
        times = master.times[fresh]
        if not len(times):
            return None
        columns: list[np.ndarray] = []
        channels: list[str] = []
        units: list[str] = []
        if acc is not None:
            columns.append(acc.values[fresh])
            channels += ACC[0]
            units += ACC[1]
        for name, (names, unit) in (("gyroscope", GYRO), ("magnetometer", MAG)):
            values = self._at(name, streams.get(name), times)
            if values is not None:
                columns.append(values)
                channels += names
                units += unit
        self.last_ns = int(times[-1])
        samples = np.concatenate(columns, axis=1).astype(np.float32)
        return Aligned(self._pieces(times, samples), tuple(channels), tuple(units), kind)

    def _converted(self, streams: dict[str, Stream]) -> dict[str, Stream]:
        flip = self.ios_native and "totalacceleration" not in streams
        out = {}
        for name, stream in streams.items():
            scale = SCALE[name]
            if flip and name in ("accelerometer", "gravity"):
                scale = -scale
            out[name] = Stream(stream.times, stream.values * scale)
        return out

    def _acceleration(self, streams: dict[str, Stream]) -> tuple[Stream | None, str]:
        if "totalacceleration" in streams:
            return streams["totalacceleration"], "total"
        user = streams.get("accelerometer")
        if user is None:
            return None, "none"
        gravity = self._at("gravity", streams.get("gravity"), user.times)
        if gravity is None:
            return None, "none"
        return Stream(user.times, user.values + gravity), "accelerometer+gravity"

    def _at(self, name: str, stream: Stream | None, times: np.ndarray) -> np.ndarray | None:
        """``name``'s values at ``times`` (with the previous batch's last reading), or None."""
        known = [] if stream is None else [(stream.times, stream.values)]
        carried = self.carry.get(name)
        first = stream.times[0] if stream is not None else times[0]
        if carried is not None and carried[0] < first and first - carried[0] <= self.hold_ns:
            known.insert(0, (np.array([carried[0]]), carried[1].reshape(1, 3)))
        if not known:
            return None
        at = np.concatenate([t for t, _ in known])
        values = np.concatenate([v for _, v in known])
        if times[0] < at[0] - self.hold_ns or times[-1] > at[-1] + self.hold_ns:
            return None  # the stream does not cover this timeline
        base = int(times[0])
        x, xp = (times - base) / 1e9, (at - base) / 1e9
        return np.stack([np.interp(x, xp, values[:, i]) for i in range(3)], axis=1)

    def _pieces(self, times: np.ndarray, samples: np.ndarray) -> list[Piece]:
        steps = np.diff(times)
        cut = np.zeros(0, dtype=np.int64)
        if len(steps):
            limit = max(4 * float(np.median(steps)), 0.1e9)
            cut = np.flatnonzero(steps > limit) + 1
        pieces = []
        for segment in np.split(np.arange(len(times)), cut):
            pieces += self._chunks(times[segment], samples[segment])
        return pieces

    def _chunks(self, times: np.ndarray, samples: np.ndarray) -> list[Piece]:
        span = (int(times[-1]) - int(times[0])) / 1e9
        rate = (len(times) - 1) / span if len(times) > 1 else (self.rate or DEFAULT_RATE)
        if len(times) > 1:
            self.rate = rate
        size = max(1, min(MAX_FRAME_SAMPLES, int(MAX_FRAME_SECONDS * rate) + 1))
        out = []
        for start in range(0, len(times), size):
            part = times[start : start + size]
            piece_rate = rate
            if len(part) > 1:
                piece_rate = (len(part) - 1) / ((int(part[-1]) - int(part[0])) / 1e9)
            out.append(Piece(int(part[0]) / 1e9, piece_rate, samples[start : start + size]))
        return out
