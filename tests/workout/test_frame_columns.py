"""What a frame hands the tracker: its accelerometer and gyroscope columns in g and deg/s.

The core copies the usual frame (both sensors side by side, in g and deg/s) to
float64 in one step and keeps the general path (a list of columns, unit
factors, zeros for an absent gyroscope) for the rest. Both must give exactly
what the plain formula gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from imu_har.protocol.codec import DEFAULT_CHANNELS, DEFAULT_UNITS, Frame
from services.workout.core import UNIT_SCALE, WorkoutCore
from services.workout.settings import WorkoutSettings
from services.workout.tracker import DeviceTracker

ACC = ["acc_x", "acc_y", "acc_z"]
GYRO = ["gyro_x", "gyro_y", "gyro_z"]
RAD = 57.29578


def handed(frame: Frame, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """The motion array the core passes to the device's tracker for ``frame``."""
    seen: list[np.ndarray] = []

    def on_samples(self: DeviceTracker, times: np.ndarray, acc: np.ndarray, rate: float) -> list:
        seen.append(acc)
        return []

    monkeypatch.setattr(DeviceTracker, "on_samples", on_samples)
    WorkoutCore(WorkoutSettings()).push(frame)
    assert len(seen) == 1
    return seen[0]


def plain(samples: np.ndarray, picks: list[int], scales: list[float]) -> np.ndarray:
    """The formula: the picked columns times their factors, zeros for what is absent."""
    motion = np.zeros((len(samples), 6))
    motion[:, : len(picks)] = samples[:, picks] * np.asarray(scales)
    return motion


def frame_of(channels: tuple[str, ...], units: tuple[str, ...], seed: int) -> Frame:
    rng = np.random.default_rng(seed)
    samples = rng.normal(0, 3, (13, len(channels))).astype(np.float32)
    return Frame("d", 0, 1.0, 50.0, samples, channels=channels, units=units)


def test_the_usual_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = frame_of(DEFAULT_CHANNELS, DEFAULT_UNITS, 1)
    motion = handed(frame, monkeypatch)
    assert motion.dtype == np.float64 and motion.flags.c_contiguous
    np.testing.assert_array_equal(motion, plain(frame.samples, list(range(6)), [1.0] * 6))
    assert not np.shares_memory(motion, frame.samples)  # the tracker may hold it


def test_other_units_and_order(monkeypatch: pytest.MonkeyPatch) -> None:
    channels = ("gyro_z", "gyro_y", "gyro_x", "acc_z", "acc_x", "acc_y")
    units = ("rad/s",) * 3 + ("m/s2",) * 3
    frame = frame_of(channels, units, 2)
    scales = [UNIT_SCALE["m/s2"]] * 3 + [RAD] * 3
    want = plain(frame.samples, [4, 5, 3, 2, 1, 0], scales)
    np.testing.assert_array_equal(handed(frame, monkeypatch), want)


def test_side_by_side_but_scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    channels = ("t", *ACC, *GYRO)
    frame = frame_of(channels, ("s",) + ("mg",) * 3 + ("mdps",) * 3, 3)
    want = plain(frame.samples, list(range(1, 7)), [1e-3] * 6)
    np.testing.assert_array_equal(handed(frame, monkeypatch), want)


@pytest.mark.parametrize("units", [("g",) * 3, ("m/s^2",) * 3])
def test_without_a_gyroscope(units: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    frame = frame_of(tuple(ACC), units, 4)
    want = plain(frame.samples, [0, 1, 2], [UNIT_SCALE[units[0]]] * 3)
    np.testing.assert_array_equal(handed(frame, monkeypatch), want)
