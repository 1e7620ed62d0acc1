"""Messages in the Sensor Logger app's push schema, built from our samples (tests and bench).

The app's schema (github.com/tszheichoi/awesome-sensor-logger, PUSHING.md):
``{"messageId", "sessionId", "deviceId", "payload": [{"name", "time": epoch ns,
"values": {"x", "y", "z"}}]}``, units as in UNITS.md: acceleration m/s^2,
rotation rad/s, magnetic field uT. :func:`readings` turns samples in our units
(g, deg/s, uT, nine channels) into the streams a phone of each kind sends:

- ``android``: ``totalacceleration`` (with gravity) and ``accelerometer``
  (without it), ``gravity``, ``gyroscope``, ``magnetometer``;
- ``android-no-total``: the same without ``totalacceleration``;
- ``ios``: ``accelerometer`` and ``gravity`` (no total), ``gyroscope``,
  ``magnetometer``, in Android's frame ("Standardise Units & Frames" on);
- ``ios-native``: the same with iOS's own sign for accelerometer and gravity.

Gravity is taken as a fixed split of the acceleration: the part that the
low-pass ``gravity`` stream would hold is the mean over the batch.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

G = 9.80665
RAD_PER_DEG = np.pi / 180.0


def xyz(name: str, times_ns: np.ndarray, values: np.ndarray) -> list[dict[str, Any]]:
    """One stream as readings: ``values`` (n, 3) already in the app's units."""
    return [
        {
            "name": name,
            "time": int(t),
            "values": {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])},
        }
        for t, v in zip(times_ns, values, strict=True)
    ]


def readings(
    samples: np.ndarray, times_ns: np.ndarray, kind: str = "android", sensors: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The readings a phone of ``kind`` sends for ``samples`` (n, 9) in g, deg/s, uT.

    ``sensors`` limits the streams (e.g. no ``magnetometer``); empty: all of the kind's.
    """
    samples = np.asarray(samples, dtype=np.float64)
    total = samples[:, :3] * G
    gravity = np.repeat(total.mean(axis=0, keepdims=True), len(total), axis=0)
    user = total - gravity
    if kind == "ios-native":
        user, gravity = -user, -gravity
    streams = {
        "totalacceleration": total,
        "accelerometer": user,
        "gravity": gravity,
        "gyroscope": samples[:, 3:6] * RAD_PER_DEG,
        "magnetometer": samples[:, 6:9],
    }
    if kind != "android":
        del streams["totalacceleration"]
    out: list[dict[str, Any]] = []
    for name, values in streams.items():
        if not sensors or name in sensors:
            out += xyz(name, times_ns, values)
    return out


def message(
    message_id: int,
    payload: list[dict[str, Any]],
    device: str = "phone-test",
    session: str = "session-1",
) -> dict[str, Any]:
    """One message of the app around ``payload``."""
    return {"messageId": message_id, "sessionId": session, "deviceId": device, "payload": payload}


def encoded(message_: dict[str, Any]) -> bytes:
    """The message as the app sends it."""
    return json.dumps(message_).encode()


def batches(
    samples: np.ndarray,
    start_ns: int,
    rate: float,
    per_batch: int,
    kind: str = "android",
    device: str = "phone-test",
    session: str = "session-1",
) -> list[dict[str, Any]]:
    """Consecutive messages of ``per_batch`` samples each, sample ``i`` at ``start + i / rate``."""
    times = start_ns + np.round(np.arange(len(samples)) * 1e9 / rate).astype(np.int64)
    out = []
    for k, first in enumerate(range(0, len(samples), per_batch)):
        part = slice(first, first + per_batch)
        out.append(message(k, readings(samples[part], times[part], kind), device, session))
    return out
