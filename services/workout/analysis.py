"""Repetitions in a stretch of signal, found non-causally: principal component, period, peaks.

The recipe (measured offline on simulated sets with their true boundaries,
tuning seeds: 97% of sets within one repetition, 78% exact):

1. the grid's six channels, accelerometer in units of 0.05 g and gyroscope in
   units of 5 deg/s so that both matter, high-passed at 0.15 Hz
   (:mod:`services.workout.signal`);
2. their first principal component over the stretch;
3. its fundamental period: the first autocorrelation peak above
   :data:`LIKENESS`;
4. low-passed at :data:`LOW_PASS` times that frequency: a push-up's
   acceleration shows two lobes a repetition and its rotation one; the second
   harmonic was the main source of double counts;
5. peaks at least :data:`SPACING` of a period apart whose prominence reaches
   :data:`PROMINENCE` of the median of the larger half of the prominences, on
   both signs; the sign with more peaks is the repetitions' (the caller may fix
   it).

:mod:`services.workout.recount` runs it on a whole set when the set ends.
(Run live every 0.4 s on the last 12 s, committing the peaks it confirmed, it
did worse than the live counter through the set logic: docs/workout.md.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import butter, find_peaks, sosfiltfilt

from services.workout.axis import period_of

LIKENESS = 0.3  # autocorrelation the period's peak must reach
SHORTEST, LONGEST = 0.3, 4.5  # s: periods looked for (jumps at 3 Hz, a slow sit-up)
LOW_PASS = 1.6  # x the fundamental: under the second harmonic
SPACING = 0.6  # of a period: the least distance between two peaks
PROMINENCE = 0.4  # of the median of the larger half of the prominences
MIN_PROMINENCE = 1.5  # units (0.075 g or 7.5 deg/s): standing sway and sensor noise
CAP = 2.0  # a sample's weight in the axis is capped at this many median distances
CUTOFF_STEP = 0.05  # Hz: low-pass cutoffs are rounded to this (their filters are cached)


@dataclass(frozen=True)
class Peaks:
    """Repetitions found in a stretch: their peak indices and prominences, the period (s),
    the principal axis (unit, with the sign counted) and the filtered component."""

    index: np.ndarray
    prominence: np.ndarray
    period: float
    rate: float
    vector: np.ndarray
    wave: np.ndarray


def principal(y: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """The first principal component's unit vector of ``y`` (n, k), turned to agree with
    ``previous`` when given. Samples beyond :data:`CAP` times the median distance from the
    mean are shrunk to it: getting into position (standing to plank, 1 g of gravity
    turning) must not take the axis from the repetitions."""
    centred = y - y.mean(axis=0)
    norms = np.sqrt(np.einsum("ij,ij->i", centred, centred))
    cap = CAP * float(np.median(norms)) + 1e-9
    centred = centred * np.minimum(1.0, cap / np.maximum(norms, 1e-9))[:, None]
    _, vectors = np.linalg.eigh(centred.T @ centred)
    vector = vectors[:, -1]
    if previous is not None and float(vector @ previous) < 0:
        vector = -vector
    return vector


@lru_cache(maxsize=128)
def _low_pass(cutoff: float, rate: float) -> np.ndarray:
    """Second-order Butterworth low-pass sections (cached: scipy designs them in ~100 us;
    sosfilt needs them writable, nothing here writes them)."""
    sos = butter(2, min(cutoff, 0.45 * rate), "lowpass", fs=rate, output="sos")
    return sos


def low_pass(period: float, rate: float) -> np.ndarray:
    """The low-pass sections at :data:`LOW_PASS` times the fundamental of ``period``."""
    cutoff = max(CUTOFF_STEP, round(LOW_PASS / period / CUTOFF_STEP) * CUTOFF_STEP)
    return _low_pass(cutoff, rate)


def _peaks(s: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    index, props = find_peaks(s, distance=max(1.0, distance), prominence=MIN_PROMINENCE)
    prominence = props["prominences"]
    if len(index) < 2:
        return index, prominence
    ordered = np.sort(prominence)
    keep = prominence >= PROMINENCE * float(np.median(ordered[len(ordered) // 2 :]))
    return index[keep], prominence[keep]


def find_repetitions(
    y: np.ndarray,
    rate: float,
    previous: np.ndarray | None = None,
    sign: int = 0,
    period: float | None = None,
    longest: float = LONGEST,
) -> Peaks | None:
    """The repetitions in grid samples ``y`` (n, k), high-passed. ``previous``: the axis
    found before (the new one agrees with it); ``sign``: the side counted so far (0: the
    one with more peaks); ``period``: used when the stretch shows none; ``longest``: the
    longest period looked for. None when the stretch is too short or not periodic."""
    if len(y) < 2 * rate:
        return None
    vector = principal(y, previous)
    along = y @ vector
    found = period_of(along, rate, SHORTEST, longest, LIKENESS) or period
    if found is None:
        return None
    wave = sosfiltfilt(low_pass(found, rate), along)
    distance = SPACING * found * rate
    if sign == 0:
        up, down = _peaks(wave, distance), _peaks(-wave, distance)
        sign = 1 if len(up[0]) >= len(down[0]) else -1
        index, prominence = up if sign > 0 else down
    else:
        index, prominence = _peaks(sign * wave, distance)
    return Peaks(index, prominence, found, rate, sign * vector, sign * wave)
