"""One device's motion signal: sample times, anti-aliasing, a fixed-rate grid, recent history.

Whatever the wearable's rate (12.5 to 200 Hz and beyond), the counter sees the
accelerometer on one grid of ``grid_rate`` samples per second (25 Hz: four
samples per jump at 3 Hz, and an eighth of the work of 200 Hz input). Raw
samples are first smoothed by an exponential filter (time constant
:data:`ANTI_ALIAS_TAU`) so that fast input does not alias landing impacts
onto the grid, then linearly interpolated at the grid points, then smoothed
once more on the grid. The last ``history`` seconds are kept in a ring buffer
for the analysis that starts a set.

Sample times follow :class:`imu_har.windowing.clock.DeviceClock`, like the
windower's, so repetitions and the classifier's windows share one timeline.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from imu_har.windowing.clock import DeviceClock
from imu_har.windowing.windows import accepted

ANTI_ALIAS_TAU = 0.03  # s: raw-rate smoothing; -15 dB at 25 Hz, 3 Hz jumps keep 85%
GRID_TAU = 0.06  # s: smoothing on the grid against sensor noise
BLOCK = 32  # samples filtered per matrix product (bounds the cached matrices)


@lru_cache(maxsize=128)
def _ema_matrix(n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(M, c)`` with ``y = M @ x + c * y_before`` for an exponential filter over n samples."""
    i = np.arange(n)
    lag = i[:, None] - i[None, :]
    decay = 1.0 - alpha
    matrix = np.where(lag >= 0, alpha * decay ** np.maximum(lag, 0), 0.0)
    carry = decay ** (i + 1.0)
    matrix.flags.writeable = False
    carry.flags.writeable = False
    return matrix, carry[:, None]


def ema(x: np.ndarray, alpha: float, before: np.ndarray) -> np.ndarray:
    """Exponential filter of ``x`` (n, c) continuing from ``before`` (c,)."""
    out = np.empty_like(x)
    alpha = round(alpha, 4)  # a few distinct rates share a few matrices
    for lo in range(0, len(x), BLOCK):
        block = x[lo : lo + BLOCK]
        matrix, carry = _ema_matrix(len(block), alpha)
        out[lo : lo + BLOCK] = matrix @ block + carry * before
        before = out[lo + len(block) - 1]
    return out


def alpha_for(step: float, tau: float) -> float:
    """Filter coefficient for samples ``step`` seconds apart."""
    return 1.0 - math.exp(-step / tau)


class MotionSignal:
    """Accelerometer (3 axes) of one device on a fixed grid, with its recent history."""

    def __init__(self, grid_rate: float, history: float, max_gap: float) -> None:
        self.grid_rate = grid_rate
        self.max_gap = max_gap
        self.clock = DeviceClock()
        self.last_time: float | None = None
        self.restarts = 0
        self._raw_y = np.zeros(3)  # filtered value at the last raw sample
        self._grid_y = np.zeros(3)  # filtered value at the last grid sample
        self._origin = 0.0
        self._k_next = 0
        self._grid_alpha = alpha_for(1.0 / grid_rate, GRID_TAU)
        self._ring = np.zeros((max(8, round(history * grid_rate)), 3))
        self._ring_t = np.zeros(len(self._ring))
        self.written = 0  # grid samples ever written

    def push(self, times: np.ndarray, acc: np.ndarray, rate: float) -> tuple[np.ndarray, ...]:
        """Add raw samples (times (n,), acc (n, 3)); return the new grid ``(times, values)``."""
        if (self.last_time is not None and times[0] <= self.last_time) or (
            len(times) > 1 and not (times[1:] > times[:-1]).all()
        ):  # duplicates and samples out of order are dropped, as the windower drops them
            fresh = accepted(times, self.last_time)
            times, acc = times[fresh], acc[fresh]
        if not len(times):
            return times, acc
        if self.last_time is None or times[0] - self.last_time > self.max_gap:
            self._restart(float(times[0]), acc[0])
        filtered = ema(acc, alpha_for(1.0 / rate, ANTI_ALIAS_TAU), self._raw_y)
        grid_t, grid_y = self._resample(times, filtered)
        self.last_time, self._raw_y = float(times[-1]), filtered[-1]
        if len(grid_t):
            grid_y = ema(grid_y, self._grid_alpha, self._grid_y)
            self._grid_y = grid_y[-1]
            self._remember(grid_t, grid_y)
        return grid_t, grid_y

    def _restart(self, t0: float, first: np.ndarray) -> None:
        """A new timeline (first sample, or after a gap): the filters start at this sample."""
        self.restarts += self.last_time is not None
        self._origin, self._k_next = t0, 0
        self._raw_y = np.asarray(first, dtype=np.float64).copy()
        self._grid_y = self._raw_y.copy()
        self.last_time = None

    def _resample(self, times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid points in (last sample, newest sample], linearly interpolated."""
        if self.last_time is not None:
            times = np.concatenate(([self.last_time], times))
            values = np.concatenate((self._raw_y[None, :], values))
        k_end = math.floor((times[-1] - self._origin) * self.grid_rate + 1e-9)
        grid_t = self._origin + np.arange(self._k_next, k_end + 1) / self.grid_rate
        self._k_next = max(self._k_next, k_end + 1)
        if not len(grid_t):
            return grid_t, np.zeros((0, 3))
        if len(times) == 1:
            return grid_t, np.repeat(values, len(grid_t), axis=0)
        j = np.clip(np.searchsorted(times, grid_t), 1, len(times) - 1)
        w = ((grid_t - times[j - 1]) / (times[j] - times[j - 1]))[:, None]
        return grid_t, values[j - 1] * (1.0 - w) + values[j] * w

    def _remember(self, grid_t: np.ndarray, grid_y: np.ndarray) -> None:
        size = len(self._ring)
        grid_t, grid_y = grid_t[-size:], grid_y[-size:]
        at = (self.written + np.arange(len(grid_t))) % size
        self._ring[at] = grid_y
        self._ring_t[at] = grid_t
        self.written += len(grid_t)

    def history(self, since: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid ``(times, values)`` kept from ``since`` on, oldest first (current timeline)."""
        count = min(self.written, len(self._ring), self._k_next)
        at = (self.written - count + np.arange(count)) % len(self._ring)
        times = self._ring_t[at]
        keep = times >= since
        return times[keep], self._ring[at][keep]
