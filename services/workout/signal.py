"""One device's motion signal: sample times, a fixed-rate grid by bin averages, recent history.

Whatever the wearable's rate (12.5 to 200 Hz and beyond), the counter sees the
accelerometer (and the gyroscope, for the count at a set's end) on one grid of
``grid_rate`` samples per second (25 Hz: eight samples per jump at 3 Hz, and an
eighth of the work of 200 Hz input). Each
grid sample is the mean of the raw samples in its bin of ``1 / grid_rate``
seconds (a box filter: landing impacts at 200 Hz do not alias onto the grid,
and the sensor noise of n samples shrinks by the square root of n), stamped at
the bin's middle. A bin is complete once a sample of a later bin arrives, so
how the samples are split into frames does not matter. Slower input leaves
bins empty; they are filled by linear interpolation between their neighbours.
The last ``history`` seconds are kept in a ring buffer for the axis fits.

Cost: a 13-sample frame becomes about six grid samples, so numpy's cost per
call (1-3 us on this machine), not the arithmetic, is what a frame costs. The
bins are found on a Python list of the frame's times, the ring buffer is
written and read with slices, and the smoothing of one frame is one matrix
product. Measured on the pushes of the throughput benchmark (50 Hz, 13-sample
frames; both versions in one process, best of 15): 81 -> 39 us a push, and
30 -> 20 us a history read. The sums, means and smoothing are numpy's as
before, in the same order, so the grid is the same to the last bit.

Sample times follow :class:`imu_har.windowing.clock.DeviceClock`, like the
windower's, so repetitions and the classifier's windows share one timeline.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from imu_har.windowing.clock import DeviceClock
from imu_har.windowing.windows import accepted

EMPTY = np.zeros(0)
EMPTY.flags.writeable = False
GRID_TAU = 0.06  # s: smoothing on the grid against sensor noise (0.02 g a sample at 12.5 Hz)
BLOCK = 16  # grid samples smoothed by one matrix product (bounds the cached matrices)


@lru_cache(maxsize=64)
def _ema_matrix(n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(M, c)`` with ``y = M @ x + c * y_before`` for an exponential filter over n samples."""
    i = np.arange(n)
    lag = i[:, None] - i[None, :]
    decay = 1.0 - alpha
    matrix = np.where(lag >= 0, alpha * decay ** np.maximum(lag, 0), 0.0)
    carry = (decay ** (i + 1.0))[:, None]
    matrix.flags.writeable = False
    carry.flags.writeable = False
    return matrix, carry


@lru_cache(maxsize=256)
def _divisors(counts: tuple[int, ...]) -> np.ndarray:
    """The bins' sample counts as a read-only column of floats (a frame's are nearly always
    the same few)."""
    column = np.array(counts, dtype=float)[:, None]
    column.flags.writeable = False
    return column


def runs(times: list[float], origin: float, rate: float) -> tuple[list[int], list[int]]:
    """Bins of ``times`` (``(t - origin) * rate`` truncated): the bin of each run of equal
    bins and the index its run starts at. A plain loop: 13 samples cost about 4 us, the
    same in numpy (subtract, scale, cast, compare, flatnonzero, index) about 12 us."""
    keys: list[int] = []
    starts: list[int] = []
    last = None
    for i, t in enumerate(times):
        key = int((t - origin) * rate)
        if key != last:
            keys.append(key)
            starts.append(i)
            last = key
    return keys, starts


class MotionSignal:
    """Motion channels of one device (accelerometer x y z in g, then gyroscope x y z in
    deg/s) on a fixed grid, with their recent history."""

    def __init__(self, grid_rate: float, history: float, max_gap: float, width: int = 3) -> None:
        self.grid_rate = grid_rate
        self.max_gap = max_gap
        self.clock = DeviceClock()
        self.last_time: float | None = None
        self.restarts = 0
        self._origin = 0.0
        self._bin = -1  # the open bin (not yet complete)
        self.width = width
        self._sum = np.zeros(width)  # ... its sum and count
        self._count = 0
        self._last_bin = -1  # the last bin written to the grid, and its mean
        self._last_value = np.zeros(width)
        self._smooth = np.zeros(width)  # the last grid sample (smoothed)
        self._alpha = 1.0 - math.exp(-1.0 / (grid_rate * GRID_TAU))
        self._ring = np.zeros((max(8, round(history * grid_rate)), width))
        self._ring_t = np.zeros(len(self._ring))
        self._nothing = np.zeros((0, width))
        self._nothing.flags.writeable = False
        self.written = 0  # grid samples ever written
        self._timeline_start = 0  # ``written`` when the current timeline began

    def push(self, times: np.ndarray, acc: np.ndarray, rate: float) -> tuple[np.ndarray, ...]:
        """Add raw samples (times (n,), values (n, width)); return the new grid
        ``(times, values)`` (read-only when empty).
        (``rate`` is the wearable's; the bins do not need it.)"""
        # Duplicates and samples out of order are dropped, as the windower drops them. A
        # frame's own times always rise (DeviceClock steps them), only its start is checked.
        if self.last_time is not None and times[0] <= self.last_time:
            fresh = accepted(times, self.last_time)
            times, acc = times[fresh], acc[fresh]
        if not len(times):
            return EMPTY, self._nothing
        stamps = times.tolist()
        if self.last_time is None or stamps[0] - self.last_time > self.max_gap:
            self._restart(stamps[0])
        self.last_time = stamps[-1]
        keys, starts = runs(stamps, self._origin, self.grid_rate)
        if keys[0] == keys[-1] == self._bin:  # all in the open bin: nothing completes
            self._sum += acc.sum(axis=0)
            self._count += len(stamps)
            return EMPTY, self._nothing
        counts = [b - a for a, b in zip(starts, [*starts[1:], len(stamps)], strict=True)]
        if keys[0] == self._bin:  # the open bin goes on
            sums = np.add.reduceat(acc, starts, axis=0)
            sums[0] += self._sum
            counts[0] += self._count
        elif self._count:  # the open bin is complete: it comes first (vstack cost 5 us)
            sums = np.empty((len(keys) + 1, self.width))
            sums[0] = self._sum
            np.add.reduceat(acc, starts, axis=0, out=sums[1:])
            counts.insert(0, self._count)
            keys.insert(0, self._bin)
        else:  # a new timeline
            sums = np.add.reduceat(acc, starts, axis=0)
        # The open bin's sum may stay a view: ``sums`` is this push's own, its other rows are
        # divided into a new array below.
        self._bin, self._sum, self._count = keys[-1], sums[-1], counts[-1]
        if len(keys) < 2:
            return EMPTY, self._nothing
        means = sums[:-1] / _divisors(tuple(counts[:-1]))
        return self._write(keys[:-1], means)

    def _write(self, keys: list[int], means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Complete bins onto the grid (empty ones in between interpolated); their times."""
        previous = self._last_bin
        if previous >= 0 and (keys[-1] - previous != len(keys)):  # empty bins to fill
            keys, means = self._fill(previous, keys, means)
        if previous < 0:
            self._smooth = means[0]
        self._last_bin, self._last_value = keys[-1], means[-1]
        smooth = self._smoothed(means)
        origin, rate = self._origin, self.grid_rate
        grid_t = np.array([origin + (key + 0.5) / rate for key in keys])
        self._remember(grid_t, smooth)
        return grid_t, smooth

    def _fill(
        self, previous: int, keys: list[int], means: np.ndarray
    ) -> tuple[list[int], np.ndarray]:
        """Every bin from the last one written to the newest, the empty ones interpolated
        (input slower than the grid, or samples lost)."""
        full = np.arange(previous + 1, keys[-1] + 1)
        known_k = np.array([previous, *keys])
        known_v = np.vstack([self._last_value, means])
        filled = np.stack([np.interp(full, known_k, known_v[:, c]) for c in range(self.width)], 1)
        return full.tolist(), filled

    def _smoothed(self, means: np.ndarray) -> np.ndarray:
        """The grid samples through the exponential filter, as matrix products."""
        if len(means) <= BLOCK:  # a frame's worth: one product, no copies
            matrix, carry = _ema_matrix(len(means), self._alpha)
            smooth = matrix @ means + carry * self._smooth
            self._smooth = smooth[-1]
            return smooth
        smooth = np.empty_like(means)
        for lo in range(0, len(means), BLOCK):
            block = means[lo : lo + BLOCK]
            matrix, carry = _ema_matrix(len(block), self._alpha)
            smooth[lo : lo + BLOCK] = matrix @ block + carry * self._smooth
            self._smooth = smooth[lo + len(block) - 1]
        return smooth

    def _restart(self, t0: float) -> None:
        """A new timeline (first sample, or after a gap): bins count from this sample."""
        self.restarts += self.last_time is not None
        self._origin = math.floor(t0 * self.grid_rate) / self.grid_rate
        self._bin, self._count, self._last_bin = -1, 0, -1
        self._sum = np.zeros(self.width)
        self._timeline_start = self.written
        self.last_time = None

    def _remember(self, grid_t: np.ndarray, grid_y: np.ndarray) -> None:
        """Into the ring buffer: one slice, or two where it wraps."""
        size = len(self._ring)
        if len(grid_t) > size:
            grid_t, grid_y = grid_t[-size:], grid_y[-size:]
        at, n = self.written % size, len(grid_t)
        head = min(n, size - at)
        self._ring[at : at + head] = grid_y[:head]
        self._ring_t[at : at + head] = grid_t[:head]
        if head < n:
            self._ring[: n - head] = grid_y[head:]
            self._ring_t[: n - head] = grid_t[head:]
        self.written += n

    def history(self, since: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid ``(times, values)`` kept from ``since`` on, oldest first (current timeline);
        copies (the ring is overwritten, the counter keeps samples)."""
        size = len(self._ring)
        count = min(self.written - self._timeline_start, size)
        first = (self.written - count) % size
        if first + count <= size:
            times, values = self._ring_t[first : first + count], self._ring[first : first + count]
        else:
            wrap = first + count - size
            times = np.concatenate((self._ring_t[first:], self._ring_t[:wrap]))
            values = np.concatenate((self._ring[first:], self._ring[:wrap]))
        keep = times >= since
        return times[keep], values[keep]
