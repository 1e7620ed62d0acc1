"""The direction a set moves in: the first principal component of the accelerometer.

RecoFit (Morris et al., CHI 2014) counts on the first principal component of
the multi-axis signal; so does this service. The three accelerometer axes on
the 25 Hz grid, each :data:`BLOCK_SECONDS` block minus its own mean (a cheap
band-pass: the grid is already smoothed), give a 3x3 covariance whose
principal axis carries both what a repetition tilts (the gravity direction)
and what it accelerates (vertical travel, a jump's push-off and landing).
Measured on simulated wearers (tuning seeds, the counter alone on true set
boundaries, docs/workout.md): the tilt alone (the previous counter) gets 58% of
sets within one repetition, this axis 84%. Adding the gyroscope made it worse
(its rate is a quarter cycle out of phase with the tilt, and the mixed axis
turned from one refit to the next).

Getting into position (standing to plank) moves far more than the
repetitions, so the axis is fitted only on the samples since the latest
posture began; a pause (no motion) keeps the axis as it was.

Cost: numpy's Python-level wrappers (``mean``, ``std``, ``linalg.norm``) cost more
than their arithmetic on arrays of 150 x 3; the helpers below call the ufuncs those
wrappers call, in the same order, so every result is the same to the last bit
(checked on every fit of the tuning wearers). Measured (one refit of 6 s, the
machine shared): 238-244 -> 188-193 us a fit with the period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.fft import next_fast_len

BLOCK_SECONDS = 2.0  # each block minus its mean: passes about 0.4 Hz and up
POSTURE_SECONDS = 1.0  # blocks whose mean is the posture
SETTLED = 0.12  # g: a posture this far from the latest one is getting into position,
SETTLED_MOTION = 1.5  # ... or this many times the last 2 s of motion (sit-ups sway ~0.8 g)
KEEP = 0.5  # of the previous fit's covariance kept at a refit: the axis turns smoothly
STILL_MOTION = 0.1  # g: the last second moved less than this: a pause
SHORTEST, LONGEST = 0.3, 4.0  # s: the periods looked for (jumps at 3 Hz, a slow sit-up)
LIKENESS = 0.2  # autocorrelation a period must reach
DIRECT = 400  # samples: the autocorrelation directly up to this, else by FFT (both measured)


@dataclass(frozen=True)
class Axis:
    """A fitted direction: unit vector (3,), the spread along it (g), and the covariance
    it came from (blended into the next fit)."""

    vector: np.ndarray
    spread: float
    covariance: np.ndarray
    period: float | None = None  # s: the first autocorrelation peak along it


def length(v: np.ndarray) -> float:
    """``np.linalg.norm(v)`` of a vector: the square root of ``v.dot(v)``, without its checks."""
    return math.sqrt(float(v.dot(v)))


def lengths(rows: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(rows, axis=1)``: the root of each row's sum of squares."""
    return np.sqrt(np.add.reduce(rows * rows, axis=1))


def block_means(x: np.ndarray, blocks: int, k: int) -> np.ndarray:
    """``x.reshape(blocks, k, -1).mean(axis=1, keepdims=True)`` (sum, then divide by k)."""
    return np.add.reduce(x.reshape(blocks, k, -1), axis=1, keepdims=True) / k


def deviation(s: np.ndarray) -> float:
    """``s.std()``: mean, the squares about it, their mean, its root (numpy's steps)."""
    d = s - np.add.reduce(s) / len(s)
    return math.sqrt(float(np.add.reduce(d * d)) / len(s))


def still(y: np.ndarray, rate: float) -> bool:
    """The last second of grid samples ``y`` moved less than :data:`STILL_MOTION` g: a pause,
    whose noise must not turn the axis."""
    recent = y[-max(2, round(rate)) :]
    return length(recent.max(axis=0) - recent.min(axis=0)) < STILL_MOTION


def _autocorrelation(s: np.ndarray) -> np.ndarray:
    """Sums of ``s[:n-k] * s[k:]`` for every lag ``k`` in ``0..n-1``. Directly up to
    :data:`DIRECT` samples, else through an FFT of a length with small factors: a refit's
    6 s at 25 Hz are 151 samples, and an FFT of 2 x 151 (a prime) took 51 us where
    ``np.correlate`` takes 8; at 300 samples 28 against 20, at 600 35 against 58."""
    n = len(s)
    if n <= DIRECT:
        return np.correlate(s, s, "full")[n - 1 :]
    size = next_fast_len(2 * n - 1)
    spectrum = np.fft.rfft(s, size)
    return np.fft.irfft(spectrum * np.conj(spectrum), size)[:n]


def period_of(
    s: np.ndarray,
    rate: float,
    shortest: float = SHORTEST,
    longest: float = LONGEST,
    likeness: float = LIKENESS,
) -> float | None:
    """The first autocorrelation peak of ``s`` between ``shortest`` and ``longest``
    seconds that reaches ``likeness`` (s; None if none does)."""
    n = len(s)
    ac = _autocorrelation(s - np.add.reduce(s) / n) / np.arange(n, 0, -1)
    if ac[0] <= 0:
        return None
    lo, hi = max(1, round(shortest * rate)), min(n - 1, round(longest * rate))
    seg = ac[lo - 1 : hi + 1] / ac[0]
    if len(seg) < 3:
        return None
    inner = seg[1:-1]
    peak = (inner >= seg[:-2]) & (inner >= seg[2:]) & (inner > likeness)
    first = int(peak.argmax())  # the first peak (argmax of booleans), if any
    return float(lo + first) / rate if peak[first] else None


def latest_posture(y: np.ndarray, rate: float) -> int:
    """Index of the first sample of the latest posture (whole :data:`POSTURE_SECONDS`
    blocks, counted from the end): a block is in it when its mean is as close to the last
    block's as :data:`SETTLED_MOTION` times the last two seconds' motion, or :data:`SETTLED`
    g (measured: without this the first 2-3 push-ups after getting down were lost on an
    axis fitted to getting down)."""
    k = max(1, round(POSTURE_SECONDS * rate))
    blocks = len(y) // k
    if blocks < 3:
        return 0
    means = block_means(y[len(y) - blocks * k :], blocks, k)[:, 0]
    recent = y[-2 * k :]
    motion = length(recent.max(axis=0) - recent.min(axis=0))
    near = lengths(means - means[-1]) < max(SETTLED, SETTLED_MOTION * motion)
    if near.all():
        return 0
    first = blocks - int(np.argmin(near[::-1]))  # blocks from the start of the latest run
    return len(y) - (blocks - first) * k


def fit_axis(y: np.ndarray, rate: float, previous: Axis | None) -> Axis:
    """The axis of grid samples ``y`` (n, 3) since the latest posture began, turned from
    ``previous`` (whose sign it keeps) unless the posture has just changed, and its period."""
    first = latest_posture(y, rate)
    k = max(2, round(BLOCK_SECONDS * rate))
    part = y[first:]
    if len(part) < k:  # less than a block in the new posture: one block, the newest
        part = y[-k:]
    blocks = len(part) // k
    shaped = part[len(part) - blocks * k :].reshape(blocks, k, -1)
    moving = (shaped - block_means(shaped, blocks, k)).reshape(blocks * k, -1)
    covariance = moving.T @ moving / len(moving)
    if previous is not None and first == 0:
        covariance = KEEP * previous.covariance + (1 - KEEP) * covariance
    _, vectors = np.linalg.eigh(covariance)
    vector = vectors[:, -1]
    if previous is not None and float(vector @ previous.vector) < 0:
        vector = -vector
    along = moving @ vector
    return Axis(vector.copy(), deviation(along), covariance, period_of(along, rate))
