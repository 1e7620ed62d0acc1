"""Counting repetitions on one number per sample: a hysteresis on adaptive levels.

The number (:mod:`services.workout.projection`: the chest's tilt or height) is
low at home and high away. Normalised by the home level ``H`` and the away
level ``F`` (medians of the last repetitions' troughs and peaks),
``z = (s - H) / (F - H)`` must rise above :data:`ARM` and fall back below
:data:`DONE` for one repetition. A partial repetition (at most 35% of the usual
depth) never arms, and noise never spans the gap; because the levels follow
the last repetitions, the count depends neither on the wearer's range of motion
nor on the sensor's placement or the set's cadence, and a pause at home simply
waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from services.workout.projection import Projection, fit, settled

ARM = 0.33  # away: above a partial repetition (at most 25% of the usual depth)
DONE = 0.2  # back home: a repetition is complete
LOW = 0.1  # at home: where a repetition starts
LEVELS = 5  # repetitions the home and away levels follow
HOME_SAMPLES = 10  # a repetition's home level: lowest of its last 10 samples at home
MIN_RISE = 1.0  # of the projection's least motion: noise at home must not arm
START_SECONDS = 3.0  # levels start from the last seconds (the repetitions, not getting there)
RECENT = 150  # samples (6 s on the 25 Hz grid) kept to find the levels again when stuck


def median(values: Iterable[float]) -> float:
    """Median of a few numbers (numpy's costs 15 us; this runs per repetition)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


@dataclass(frozen=True)
class Cycle:
    """One repetition found by the counter (times on the device timeline)."""

    start: float
    peak: float
    end: float
    depth: float  # peak above the home level, in signal units
    detected: float  # time of the sample that completed it
    relative: float = 1.0  # depth over the counter's usual span (comparable across refits)

    @property
    def seconds(self) -> float:
        """Duration."""
        return self.end - self.start


@dataclass
class RepCounter:
    """Hysteresis counting with home and away levels that follow the repetitions."""

    projection: Projection
    home: float
    away: float
    troughs: deque[float] = field(default_factory=lambda: deque(maxlen=LEVELS))
    peaks: deque[float] = field(default_factory=lambda: deque(maxlen=LEVELS))
    _away_now: bool = False
    _home_since: float | None = None  # been home (z <= DONE) since then; None: not yet
    _low_time: float | None = None  # last time at home proper (z <= LOW)
    _out_time: float = 0.0  # last time at z <= DONE before leaving
    _home_values: deque[float] = field(default_factory=lambda: deque(maxlen=HOME_SAMPLES))
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    _changed: float | None = None  # time of the last arm or completion
    _peak: float = -np.inf
    _peak_time: float = 0.0

    def feed(self, times: np.ndarray, y: np.ndarray) -> list[Cycle]:
        """Grid samples ``(times, y (n, 3))`` in order; the repetitions they complete."""
        found: list[Cycle] = []
        recent = self._recent
        low, done, arm = self._thresholds()
        for t, v in zip(times.tolist(), self.projection.apply(y).tolist(), strict=True):
            recent.append(v)
            if self._changed is None:
                self._changed = t
            elif t - self._changed > self.stuck_seconds:
                self._relevel(t)
                low, done, arm = self._thresholds()
                continue
            if not self._away_now:
                if v <= done:
                    self._out_time = t
                    self._home_values.append(v)
                    if self._home_since is None:
                        self._home_since = t
                    if v <= low:
                        self._low_time = t
                elif v >= arm and self._home_since is not None:
                    self._away_now, self._peak, self._peak_time = True, v, t
                    self._changed = t
            elif v > self._peak:
                self._peak, self._peak_time = v, t
            elif v < done:
                found.append(self._complete(t))
                low, done, arm = self._thresholds()
        return found

    def _thresholds(self) -> tuple[float, float, float]:
        """Signal levels of :data:`LOW`, :data:`DONE` and :data:`ARM` (at least
        :data:`MIN_RISE` of the least motion above home: noise at home must not arm)."""
        min_span = self.projection.min_span
        span = max(self.away - self.home, min_span)
        arm = self.home + max(ARM * span, MIN_RISE * min_span)
        return self.home + LOW * span, self.home + DONE * span, arm

    @property
    def armed(self) -> bool:
        """A repetition is under way: away from home, past :data:`ARM`."""
        return self._away_now

    def _complete(self, t: float) -> Cycle:
        """Back home. The repetition started at the last home sample before it left; it ends
        about as long after passing DONE as it took from that sample to DONE going out."""
        start = self._low_time if self._low_time is not None else self._home_since
        assert start is not None
        rise = max(0.0, self._out_time - start)
        depth = self._peak - self.home
        span = max(self.away - self.home, self.projection.min_span)
        cycle = Cycle(start, self._peak_time, t + rise, depth, t, depth / span)
        if self._home_values:  # where it rested just before (not a set-up move long before)
            self.troughs.append(min(self._home_values))
        self.peaks.append(self._peak)
        if self.troughs:
            self.home = median(self.troughs)
        self.away = median(self.peaks)
        self._away_now, self._home_since, self._low_time = False, t, None
        self._out_time, self._changed = t, t
        self._home_values.clear()
        return cycle

    @property
    def stuck_seconds(self) -> float:
        """No arm or completion for this long: the levels are probably wrong."""
        return 6.0

    def _relevel(self, t: float) -> None:
        """Find the levels again from the last seconds, if there was motion of a similar size
        (after a pause the levels stay: noise must not become repetitions)."""
        self._changed = t
        lo, hi = np.percentile(self._recent, [10, 90])
        if hi - lo >= 0.5 * (self.away - self.home) and hi - lo >= self.projection.min_span:
            self.home, self.away = float(lo), float(hi)
            self._away_now, self._home_since, self._low_time = False, None, None
            self._home_values.clear()


def analyse(
    times: np.ndarray,
    y: np.ndarray,
    rate: float,
    alternating: bool = False,
    like: Projection | None = None,
) -> tuple[RepCounter, list[Cycle]]:
    """Count the repetitions in a stretch of signal from scratch.

    Levels start at the 10th and 90th percentiles; a second pass starts from the
    medians of the troughs and peaks the first one found. Returns the counter
    (ready to go on with live samples after ``times[-1]``) and the repetitions.
    """
    keep = settled(y, rate)
    # Count from where the latest posture began.
    first = 0 if not keep[-1] or keep.all() else int(len(keep) - np.argmin(keep[::-1]))
    times, y = times[first:], y[first:]
    projection = fit(y, rate, alternating, like)
    s = projection.apply(y)
    home, away = (float(x) for x in np.percentile(s[-round(START_SECONDS * rate) :], [10, 90]))
    first_pass = RepCounter(projection, home, away)
    first_pass.feed(times, y)
    if len(first_pass.peaks) >= 2:
        home = median(first_pass.troughs) if first_pass.troughs else home
        away = median(first_pass.peaks)
    counter = RepCounter(projection, home, away)
    return counter, counter.feed(times, y)
