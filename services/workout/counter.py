"""Counting repetitions on the projected signal: turning points with a moving hysteresis.

The accelerometer on the set's axis (:mod:`services.workout.axis`) swings
out and back once per repetition. A *turning point* is confirmed when the
signal has come back from its running extreme by ``delta``: a fraction
(:data:`HYSTERESIS`) of the recent swings (the median of the last
:data:`SWINGS`, at most :data:`SPREADS` times the axis' spread so that one
huge posture change cannot silence the counter, at least :data:`MIN_DELTA`).
A repetition is counted at each confirmed turning point on the counted side,
at least :data:`REFRACTORY` of a period after the previous one: small bumps
inside a repetition (a landing, the jolt when a push-up turns) never count
twice. The period is the axis' autocorrelation period, or the spacing of the
last turning points on the counted side when shorter.

A pause simply waits (no turning point while still), a partial repetition
(10-25% deep) never moves ``delta``, and a slow drift of the posture shifts
both sides alike. The counted side is the one *away* from where repetitions
rest: the posture of the latest pause (:attr:`TurnCounter.rest`, set by the
detector) projected on the axis. Counting the resting side would count each
repetition only when the next one starts (late after a pause) and count the
start of the first repetition as one (measured: +1 on most sit-up and squat
sets). When the pause sits between the two sides (a vertical push or a jump:
the accelerometer reads 1 g at rest, between the push's two extremes; an
alternating lunge) either side will do and the side stays as it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from services.workout.axis import Axis

HYSTERESIS = 0.4  # of the typical swing: partial repetitions (at most 25%) stay under it
SWINGS = 4  # recent swings the typical one is the median of
SPREADS = 2.0  # ... at most this many spreads of the axis (a sine swings 2.8): set-up moves
FIRST_SPREADS = 2.5  # the typical swing before any is known
MIN_DELTA = 0.06  # g: standing sway and sensor noise (0.02 g a sample) never move this far
REFRACTORY = 0.55  # of the period: the least time between two counted turning points
MAX_SPACING = 5.0  # s: a longer spacing is a pause, not a period
EARLY_PERIOD = 1.0  # s: the longest period assumed before two spacings are known
HOME_NEAR = 0.25  # the counted side this close to where repetitions rest (of the span): switch
DEFAULT_PERIOD = 0.5  # s, while the period is unknown (the shortest repetition counted)
HALF_PERIODS = 0.6  # a repetition spans its turning point +- this much of the period at most


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
    depth: float  # the swing into the counted turning point (g along the axis)
    detected: float  # time of the sample that confirmed it
    relative: float = 1.0  # depth over the typical swing (comparable across refits)
    direction: tuple[float, float, float] = (0.0, 0.0, 0.0)  # unit vector of the swing (3-D)

    @property
    def seconds(self) -> float:
        """Duration."""
        return self.end - self.start


@dataclass
class Extreme:
    """A running or confirmed turning point: value on the axis, the sample, its time."""

    value: float
    sample: np.ndarray
    time: float


@dataclass
class TurnCounter:
    """Turning points of the projected signal, and the repetitions they count."""

    axis: Axis
    swings: deque[float] = field(default_factory=lambda: deque(maxlen=SWINGS))
    rising: bool | None = None  # None: no direction yet
    low: Extreme | None = None
    high: Extreme | None = None
    last: Extreme | None = None  # the last confirmed turning point
    counted_at: float = -np.inf  # time of the last counted turning point
    high_at: float = -np.inf  # time of the last confirmed turning point on the counted side
    spacings: deque[float] = field(default_factory=lambda: deque(maxlen=SWINGS))
    side: int = 1  # the side counted: +1 highs, -1 lows
    rest: np.ndarray | None = None  # a sample at the latest pause: where repetitions rest
    turns: dict[int, deque[np.ndarray]] = field(
        default_factory=lambda: {1: deque(maxlen=3), -1: deque(maxlen=3)}
    )

    def refit(self, axis: Axis) -> None:
        """Go on with a new axis: the turning points kept are projected on it."""
        self.axis = axis
        for point in (self.low, self.high, self.last):
            if point is not None:
                point.value = float(point.sample @ axis.vector)

    @property
    def delta(self) -> float:
        """How far the signal must come back from an extreme to confirm it (g)."""
        spread = self.axis.spread
        if len(self.swings) >= 2:
            typical = min(median(self.swings), SPREADS * spread)
        else:
            typical = FIRST_SPREADS * spread
        return max(HYSTERESIS * typical, MIN_DELTA)

    @property
    def period(self) -> float:
        """The axis' period, or the spacing of the last turning points on the counted side
        when shorter (the autocorrelation now and then finds twice the period, and the
        refractory time would then drop every other repetition), or a short default."""
        period = self.axis.period or DEFAULT_PERIOD
        if len(self.spacings) >= 2:
            return min(period, median(self.spacings))
        return min(period, EARLY_PERIOD)

    def feed(self, times: np.ndarray, y: np.ndarray) -> list[Cycle]:
        """Grid samples ``(times, y (n, 3))`` in order; the repetitions they complete."""
        found: list[Cycle] = []
        values = (y @ self.axis.vector).tolist()
        delta = self.delta
        for i, (t, v) in enumerate(zip(times.tolist(), values, strict=True)):
            low, high = self.low, self.high
            if low is None or high is None:
                self.low = self.high = Extreme(v, y[i], t)
                continue
            if v > high.value:
                self.high = Extreme(v, y[i], t)
            elif v < low.value:
                self.low = Extreme(v, y[i], t)
            if self.rising is not False and high.value - v > delta:
                cycle = self._turn(high, t, 1)
                self.rising, self.low = False, Extreme(v, y[i], t)
            elif self.rising is not True and v - low.value > delta:
                cycle = self._turn(low, t, -1)
                self.rising, self.high = True, Extreme(v, y[i], t)
            else:
                continue
            if cycle is not None:
                found.append(cycle)
            delta = self.delta
        return found

    def _side_from_rest(self) -> None:
        """Count the side away from where the repetitions rest: switch when the counted
        side's recent turning points lie within :data:`HOME_NEAR` of the span from the
        posture at the latest pause."""
        if self.rest is None or not self.turns[1] or not self.turns[-1]:
            return
        w = self.axis.vector
        home = float(self.rest @ w)
        far = {k: abs(median(float(x @ w) for x in v) - home) for k, v in self.turns.items()}
        if far[self.side] < HOME_NEAR * (far[self.side] + far[-self.side]):
            self.side = -self.side
            self.spacings.clear()
            self.high_at = -np.inf

    def _turn(self, point: Extreme, t: float, side: int) -> Cycle | None:
        """A confirmed turning point; the repetition it counts (on the counted side)."""
        last, self.last = self.last, point
        if last is None:
            return None
        swing = abs(point.value - last.value)
        typical = median(self.swings) if len(self.swings) >= 2 else swing
        self.swings.append(swing)
        self.turns[side].append(point.sample)
        self._side_from_rest()
        if side != self.side:
            return None
        if point.time - self.high_at < MAX_SPACING:  # not the first, nor after a long pause
            self.spacings.append(point.time - self.high_at)
        self.high_at = point.time
        if point.time - self.counted_at < REFRACTORY * self.period:
            return None
        self.counted_at = point.time
        half = max(min(point.time - last.time, HALF_PERIODS * self.period), 1e-3)
        moved = point.sample - last.sample
        x, y, z = (moved / max(float(np.sqrt(moved @ moved)), 1e-9)).tolist()
        return Cycle(
            point.time - half,
            point.time,
            point.time + half,
            swing,
            t,
            swing / max(typical, 1e-9),
            (x, y, z),
        )
