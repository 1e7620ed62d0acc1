"""Pure windowing math shared by the live windower and training.

:class:`DeviceWindower` takes one device's samples with timestamps, resamples
them onto a uniform grid at the target rate by linear interpolation, and cuts
sliding windows of ``length`` grid samples every ``hop``. The result does not
depend on how the stream is chunked into frames: pushing a whole recording at
once (training, :func:`cut_windows`) and pushing it frame by frame (the live
windower) yield identical windows, bit for bit.

Rules: samples not later than the last accepted one are dropped (duplicates,
out of order); a jump longer than ``max_gap`` seconds restarts the grid and the
window (a window never spans a gap); the grid origin is the first sample after
a (re)start, grid point k lies at ``origin + k / rate``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

DEFAULT_MAX_GAP = 1.0  # seconds: live (the windower's --max-gap default) and training alike
SMALL_PUSH = 64  # raw samples (and the one before): resampled in Python floats, not numpy


@dataclass(frozen=True)
class WindowSpec:
    """Window length and hop in grid samples, grid rate (Hz), and the gap that restarts."""

    length: int
    hop: int
    rate: float
    max_gap: float = DEFAULT_MAX_GAP

    def __post_init__(self) -> None:
        if self.length < 2 or self.hop < 1 or self.rate <= 0 or self.max_gap <= 0:
            raise ValueError(f"invalid window spec {self}")


@dataclass(frozen=True)
class CutWindow:
    """One window of one device: samples (length, channels) float32 and where it came from."""

    seq: int
    start: float
    end: float
    samples: np.ndarray
    sources: np.ndarray  # index (in push order, dropped samples counted) of the nearest raw sample


@dataclass
class PushResult:
    """What one push produced and what it dropped."""

    windows: list[CutWindow] = field(default_factory=list)
    dropped: int = 0  # samples not later than the previous one (see :func:`accepted`)
    gaps: int = 0  # restarts caused by a gap longer than max_gap


class DeviceWindower:
    """Incremental resampler and sliding-window cutter for one device."""

    def __init__(self, spec: WindowSpec, n_channels: int, track_sources: bool = True) -> None:
        self.spec = spec
        self.n_channels = n_channels
        self.track_sources = track_sources  # training needs them for labels; live does not
        self.seq = 0  # next window sequence number
        self._raw_count = 0  # raw samples pushed so far, dropped ones too (source index base)
        self._prev_t: float | None = None
        self._prev_x = np.zeros(n_channels)
        self._prev_src = -1
        self._origin = 0.0
        self._k_next = 0  # next grid index in the current segment
        self._tail = np.zeros((0, n_channels), dtype=np.float32)  # last length-1 grid samples
        self._tail_src = np.zeros(0, dtype=np.int64)
        # Untracked (the live windower): no source indices are built or cut, and every
        # window shares this read-only row of -1. With the column copy the windower no
        # longer makes, a frame went 133 -> 110 us (decode, push, encode; 2026-12-05).
        self._no_sources = np.full(spec.length, -1, dtype=np.int64)
        self._no_sources.flags.writeable = False

    @property
    def last_time(self) -> float | None:
        """Time of the last accepted raw sample."""
        return self._prev_t

    def reset_timeline(self) -> None:
        """Forget the timeline (the next sample starts a new grid); window numbers go on."""
        self._restart(0.0)

    def push(self, times: np.ndarray, values: np.ndarray) -> PushResult:
        """Add samples (times in seconds, values (n, channels)); return the new windows."""
        times = np.asarray(times, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        result = PushResult()
        if len(times) == 0:
            return result
        # Untracked, ``src`` stays None all the way (no index arrays to build and cut).
        src = self._raw_count + np.arange(len(times)) if self.track_sources else None
        self._raw_count += len(times)
        if not self._all_fresh(times):
            keep = accepted(times, self._prev_t)
            result.dropped = int(len(times) - keep.sum())
            times, values = times[keep], values[keep]
            src = None if src is None else src[keep]
        for seg_t, seg_x, seg_s, restart in self._segments(times, values, src):
            if restart:
                result.gaps += int(self._prev_t is not None)
                self._restart(float(seg_t[0]))
            grid, grid_src = self._resample(seg_t, seg_x, seg_s)
            result.windows += self._cut(grid, grid_src)
            self._prev_t, self._prev_x = seg_t[-1], seg_x[-1]
            self._prev_src = -1 if seg_s is None else int(seg_s[-1])
        return result

    def _all_fresh(self, times: np.ndarray) -> bool:
        """Fast check for the usual case: in order and later than the last sample."""
        if self._prev_t is not None and times[0] <= self._prev_t:
            return False
        return len(times) == 1 or bool((times[1:] > times[:-1]).all())

    def _segments(self, times: np.ndarray, values: np.ndarray, src: np.ndarray | None):
        """Split at gaps; yield (times, values, sources or None, starts_new_segment)."""
        if len(times) == 0:
            return
        gap = self.spec.max_gap
        first_gap = self._prev_t is None or times[0] - self._prev_t > gap
        if not first_gap and (len(times) == 1 or (times[1:] - times[:-1]).max() <= gap):
            yield times, values, src, False  # the usual case: one continuing segment
            return
        prev = np.concatenate(([-np.inf if self._prev_t is None else self._prev_t], times[:-1]))
        starts = np.flatnonzero(times - prev > gap).tolist()
        bounds = sorted({0, *starts, len(times)})
        for a, b in itertools.pairwise(bounds):
            yield times[a:b], values[a:b], None if src is None else src[a:b], a in starts

    def _restart(self, t0: float) -> None:
        self._origin, self._k_next = t0, 0
        self._prev_t = None
        self._tail = self._tail[:0]
        self._tail_src = self._tail_src[:0]

    def _resample(
        self, seg_t: np.ndarray, seg_x: np.ndarray, seg_s: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Grid samples in (previous sample, last sample of the segment], and their
        nearest raw samples (None untracked)."""
        if len(seg_t) <= SMALL_PUSH:
            return self._resample_small(seg_t, seg_x, seg_s)
        if self._prev_t is None:
            t_ext, x_ext, s_ext = seg_t, seg_x, seg_s
        else:
            t_ext = np.concatenate(([self._prev_t], seg_t))
            x_ext = np.concatenate((self._prev_x[None, :], seg_x))
            s_ext = None if seg_s is None else np.concatenate(([self._prev_src], seg_s))
        rate, last_t = self.spec.rate, float(t_ext[-1])
        k_end = math.floor((last_t - self._origin) * rate + 1e-9)
        grid_t = self._origin + np.arange(self._k_next, k_end + 1) / rate  # k / rate: exact
        if len(grid_t) and grid_t[-1] > last_t:
            grid_t = grid_t[grid_t <= last_t]
        self._k_next += len(grid_t)
        j = np.maximum(np.searchsorted(t_ext, grid_t, side="left"), 1)
        w = ((grid_t - t_ext[j - 1]) / (t_ext[j] - t_ext[j - 1]))[:, None]
        grid = x_ext[j - 1] * (1.0 - w) + x_ext[j] * w  # exact at w == 0 and w == 1
        if s_ext is None:
            return grid.astype(np.float32), None
        nearest = np.where(w[:, 0] >= 0.5, s_ext[j], s_ext[j - 1])
        return grid.astype(np.float32), nearest

    def _resample_small(
        self, seg_t: np.ndarray, seg_x: np.ndarray, seg_s: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`_resample` for one frame's worth of samples: grid times, bracketing
        samples and weights in Python floats (the same IEEE operations in the same order:
        the same bits), then one gather and the interpolation in numpy. A 13-sample frame
        gives about three grid points, on which numpy's 20-odd calls cost more than this:
        a windower frame (decode, push, encode) 110 -> 93 us, 300 devices at 50 Hz, 13
        samples a frame, windows identical (2026-12-05)."""
        times = seg_t.tolist()
        shift = 0 if self._prev_t is None else 1  # index in ``times`` -> index in the segment
        if shift:
            times.insert(0, self._prev_t)
        rate, origin, last_t = self.spec.rate, self._origin, times[-1]
        k_end = math.floor((last_t - origin) * rate + 1e-9)
        grid_t = [origin + k / rate for k in range(self._k_next, k_end + 1)]
        if grid_t and grid_t[-1] > last_t:
            grid_t = [g for g in grid_t if g <= last_t]
        self._k_next += len(grid_t)
        if len(times) == 1:  # one sample, the segment's first: it is every grid point
            n = len(grid_t)
            repeated = np.repeat(seg_x, n, axis=0).astype(np.float32)
            return repeated, None if seg_s is None else np.repeat(seg_s, n)
        his = [max(bisect.bisect_left(times, g), 1) for g in grid_t]
        los = [j - 1 for j in his]
        weights = [
            (g - times[a]) / (times[b] - times[a]) for g, a, b in zip(grid_t, los, his, strict=True)
        ]
        w = np.array(weights)[:, None]
        if shift and los and los[0] == 0:  # the first grid point follows the previous sample
            rows, base = np.concatenate((self._prev_x[None, :], seg_x)), 0
        else:
            rows, base = seg_x, shift
        n = len(grid_t)
        pairs = rows.take([i - base for i in (*los, *his)], axis=0)  # a list index: 3 -> 1 us
        grid = pairs[:n] * (1.0 - w) + pairs[n:] * w  # exact at w == 0 and w == 1
        if seg_s is None:
            return grid.astype(np.float32), None
        picks = [b if x >= 0.5 else a for x, a, b in zip(weights, los, his, strict=True)]
        nearest = [self._prev_src if i < shift else int(seg_s[i - shift]) for i in picks]
        return grid.astype(np.float32), np.array(nearest, dtype=np.int64)

    def _cut(self, grid: np.ndarray, grid_src: np.ndarray | None) -> list[CutWindow]:
        """Emit every window whose last grid sample is among the new ones."""
        length, hop = self.spec.length, self.spec.hop
        first_k = self._k_next - len(grid)  # segment grid index of grid[0]
        buf = np.concatenate((self._tail, grid))
        tracked = grid_src is not None
        buf_src = self._tail_src if grid_src is None else np.concatenate((self._tail_src, grid_src))
        buf_k0 = first_k - len(self._tail)
        windows = []
        for end_k in range(first_k, self._k_next):
            if end_k < length - 1 or (end_k - (length - 1)) % hop:
                continue
            lo = end_k - length + 1 - buf_k0
            windows.append(
                CutWindow(
                    seq=self.seq,
                    start=self._origin + (end_k - length + 1) / self.spec.rate,
                    end=self._origin + end_k / self.spec.rate,
                    samples=buf[lo : lo + length].copy(),
                    sources=buf_src[lo : lo + length].copy() if tracked else self._no_sources,
                )
            )
            self.seq += 1
        keep = max(0, len(buf) - (length - 1))
        self._tail = buf[keep:]
        if tracked:
            self._tail_src = buf_src[keep:]
        return windows


def accepted(times: np.ndarray, after: float | None = None) -> np.ndarray:
    """Mask of the samples a :class:`DeviceWindower` keeps: later than ``after`` and than
    every sample before them (the rest are duplicates or out of order and dropped)."""
    start = -np.inf if after is None else after
    before = np.maximum.accumulate(np.concatenate(([start], times)))[:-1]
    return np.asarray(times > before)


def cut_windows(
    values: np.ndarray, spec: WindowSpec, times: np.ndarray | None = None
) -> list[CutWindow]:
    """Cut one whole recording (values (n, channels)); ``times`` default to ``i / rate``.

    The same code path as the live windower, so training sees the same windows.
    """
    values = np.asarray(values, dtype=np.float64)
    if times is None:
        times = np.arange(len(values), dtype=np.float64) / spec.rate
    return DeviceWindower(spec, values.shape[1]).push(times, values).windows
