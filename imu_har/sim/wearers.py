"""How one simulated wearer (and their device) differs from the average.

A :class:`WearerProfile` scales range of motion and tempo, places the sensor,
and sets its noise, biases and the magnetic field where the wearer stands;
:func:`random_profile` draws a plausible one, so classes differ across people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WearerProfile:
    """How one wearer (and their device) differs from the average."""

    amplitude: float = 1.0  # range of motion scale
    cadence: float = 1.0  # tempo scale
    placement: tuple[float, float, float] = (0.0, 0.0, 0.0)  # sensor roll/pitch/yaw offset, deg
    noise: float = 1.0  # sensor noise scale
    heading: float = 0.0  # direction the wearer faces, deg from magnetic north
    inclination: float = 62.0  # magnetic dip angle, deg
    field: float = 50.0  # earth field strength, uT
    acc_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)  # g
    gyro_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)  # deg/s
    mag_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # hard-iron offset, uT
    phase: float = 0.0  # phase of the slow cadence variation, rad


def random_profile(rng: np.random.Generator) -> WearerProfile:
    """A plausible random wearer: the spread makes classes differ across people."""

    def vec(scale: float) -> tuple[float, float, float]:
        a, b, c = rng.normal(0.0, scale, 3)
        return float(a), float(b), float(c)

    return WearerProfile(
        amplitude=float(rng.uniform(0.75, 1.25)),
        cadence=float(rng.uniform(0.8, 1.2)),
        placement=vec(7.0),
        noise=float(rng.uniform(0.5, 1.5)),
        heading=float(rng.uniform(0.0, 360.0)),
        inclination=float(rng.uniform(55.0, 70.0)),
        field=float(rng.uniform(45.0, 55.0)),
        acc_bias=vec(0.015),
        gyro_bias=vec(0.8),
        mag_offset=vec(3.0),
        phase=float(rng.uniform(0.0, 2 * np.pi)),
    )
