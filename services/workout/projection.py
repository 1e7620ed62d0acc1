"""From three accelerometer axes to the one number a repetition moves: the chest's tilt.

A repetition leaves a *home* posture and comes back, so the counted signal
should rest at home during a pause, whatever the cadence. The gravity
direction (the low-passed accelerometer) is position-like; vertical body
acceleration is not (it swings below and above rest and sits halfway during
a pause), so only the part perpendicular to the mean gravity is used:

- ``tilt``: the projection on the principal axis of that plane (RecoFit counts
  on the first principal component). The axis is fitted on the signal minus its
  2 s running mean, so the slow end of getting into position (standing to
  plank) does not pick it. Sit-ups, squats, push-ups and jumps tilt the chest;
- ``distance``: for exercises whose repetitions alternate sides (lunges: left,
  home, right, home — a principal axis would see one cycle per two
  repetitions), the tilt's distance from home, the posture held longest (the
  densest cell of a histogram of the tilt plane).

The tilt's sign is chosen so that home (where the signal dwells: pauses happen
at home) is low.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

MIN_TILT = 0.06  # g (3.4 degrees): standing sway (about 2 degrees) and sensor noise stay under it
SETTLED = 0.12  # g: samples whose 1 s mean posture is this far from the latest are moving in,
SETTLE_SECONDS = 1.0  # ... or 1.5 times the last 2 s of motion (sit-ups sway it by ~0.8 g)
TREND_SECONDS = 2.0  # running mean removed before fitting the axis
CELLS = 10  # per axis of the tilt-plane histogram that finds home
Kind = Literal["tilt", "distance"]


@dataclass
class Projection:
    """How (n, 3) accelerometer samples on the grid become one counted number (g)."""

    kind: Kind
    axis: np.ndarray  # tilt axis (3,), or the tilt plane's basis (3, 2) for distance
    offset: np.ndarray  # a posture subtracted first (the median, or home)
    sign: float = 1.0

    min_span: ClassVar[float] = MIN_TILT  # the smallest range that is motion

    def apply(self, y: np.ndarray) -> np.ndarray:
        """Signal values for samples ``y`` (n, 3)."""
        moved = (y - self.offset) @ self.axis
        if self.kind == "distance":
            return np.sqrt((moved**2).sum(axis=1))
        return self.sign * moved


def running_mean(y: np.ndarray, k: int) -> np.ndarray:
    """Centred running mean of ``y`` (n, c) over ``k`` samples (shorter at the ends)."""
    if len(y) <= k:
        return np.broadcast_to(y.mean(axis=0), y.shape)
    sums = np.cumsum(np.vstack([np.zeros((1, y.shape[1])), y]), axis=0)
    lo = np.clip(np.arange(len(y)) - k // 2, 0, len(y) - k)
    return (sums[lo + k] - sums[lo]) / k


def high_pass(y: np.ndarray, rate: float) -> np.ndarray:
    """``y`` minus its centred :data:`TREND_SECONDS` running mean."""
    return y - running_mean(y, max(1, round(TREND_SECONDS * rate)))


def settled(y: np.ndarray, rate: float) -> np.ndarray:
    """Mask of the samples taken in the latest posture: getting into position before a set
    (standing to plank, say) tilts more than the repetitions and must not pick the axis.

    The posture is the :data:`SETTLE_SECONDS` running mean; a sample is settled when its
    posture is as close to the latest one as 1.5 times the last two seconds' motion, or
    :data:`SETTLED` g.
    """
    k = max(1, round(SETTLE_SECONDS * rate))
    if len(y) <= 3 * k:
        return np.ones(len(y), dtype=bool)
    posture = running_mean(y, k)
    latest = high_pass(y, rate)[-2 * k :]
    motion = float(np.linalg.norm(latest.max(axis=0) - latest.min(axis=0)))
    return np.linalg.norm(posture - posture[-1], axis=1) < max(SETTLED, 1.5 * motion)


def fit(
    y: np.ndarray, rate: float, alternating: bool, like: Projection | None = None
) -> Projection:
    """The projection for recent samples ``y`` (n, 3) on a ``rate`` grid.

    Refitted (``like``: the projection so far), a tilt keeps its sense: home stays the
    same end. Deciding again by the dwell flipped it now and then within a set (with few
    pauses both ends dwell alike), and every flip lost half a repetition.
    """
    mean = y.mean(axis=0)
    gravity = mean / max(float(np.linalg.norm(mean)), 1e-9)
    flat = np.eye(3) - np.outer(gravity, gravity)
    moving = high_pass(y, rate) @ flat
    _, vectors = np.linalg.eigh(moving.T @ moving)
    if alternating:
        return _distance(y, vectors[:, -2:])
    tilt = Projection("tilt", vectors[:, -1], np.median(y, axis=0))
    if like is not None and like.kind == "tilt":
        tilt.sign = 1.0 if like.sign * float(like.axis @ tilt.axis) >= 0 else -1.0
    else:
        tilt.sign = _home_low(tilt.apply(y))
    return tilt


def _distance(y: np.ndarray, basis: np.ndarray) -> Projection:
    """Distance in the tilt plane from home: the centre of the samples in the densest cell."""
    plane = y @ basis
    counts, xs, ys = np.histogram2d(plane[:, 0], plane[:, 1], bins=CELLS)
    i, j = np.unravel_index(int(np.argmax(counts)), counts.shape)
    inside = (
        (plane[:, 0] >= xs[i])
        & (plane[:, 0] <= xs[i + 1])
        & (plane[:, 1] >= ys[j])
        & (plane[:, 1] <= ys[j + 1])
    )
    return Projection("distance", basis, y[inside].mean(axis=0))


def _home_low(s: np.ndarray) -> float:
    """+1 if the signal dwells near its low end (home is low), else -1."""
    lo, hi = np.percentile(s, [10, 90])
    near_lo = np.count_nonzero(s < lo + 0.25 * (hi - lo))
    near_hi = np.count_nonzero(s > hi - 0.25 * (hi - lo))
    return 1.0 if near_lo >= near_hi else -1.0
