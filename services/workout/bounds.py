"""Where a set's repetitions begin and end, decided once the set is over.

The live tracker's span of a set is often off by a repetition or two: it
starts on the first repetition the classifier already calls the exercise
(seconds late, or early when a set-up move looked like one) and ends on the
last one the live counter accepted (a move after the set, getting up from a
plank, is sometimes one). When the set ends, :func:`count_set` looks again
over a wider stretch (:data:`REACH` seconds either side):

1. the period, the axis and the filtered component come from the live span
   (:func:`services.workout.analysis.find_repetitions`), where they are surest;
2. on the wide stretch, the peaks on each side of that component (two a
   repetition: where it turns back, and where it rests between two);
3. a *chain* per side: the live span's peaks, then outwards peak by peak while
   the next is at most :data:`GAP` periods away, of a prominence between
   :data:`LOW` and :data:`HIGH` times the set's, and the classifier's windows
   over it (half a period either side) call it the exercise at least as much
   as rest or any other exercise; inwards, the live span's edge peaks that fail the same test are
   dropped (the set-up move and the getting-up move the live span took in);
4. which side counts: when one side's chain encloses the other's it has one
   more peak, and is either the side where repetitions rest (a peak at the
   start of the first repetition and at the end of the last: a fence with one
   post more than gaps) or the side the repetitions turn on while the other
   lost its end peaks. A resting side's end peaks have a flat outer flank (the
   stillness before and after the set): when the outer flank falls less than
   :data:`EDGE` times the inner one on average, the enclosed side counts.

Measured on simulated wearers (tuning seeds 1000-1029, 240 sets, the demo
model's votes), against counting the live span alone: exact 56% -> 76%, within
one 87% -> 92%. Without the votes (extending and trimming on prominence and
spacing alone) exact fell to 47%; choosing the side with more peaks instead of
by the flanks 70%; by the level of the stillest samples 75%.

The period: uneven repetitions with pauses can keep the autocorrelation's peak at
the true period under its bar, so its first peak above is two periods; when it is
more than :data:`MULTIPLE` times the live counter's period, the period is looked for
again up to :data:`SHORTER` times that one (the live one when none is found). On the
retired report seeds (5000-5029, now a tuning family) it mended a push-up set counted
5 of 15 and a sit-up set counted 8 of 14; no other set of the three tuning families
changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks, sosfiltfilt

from services.workout.analysis import (
    MIN_PROMINENCE,
    PROMINENCE,
    SPACING,
    find_repetitions,
    low_pass,
)
from services.workout.evidence import WindowVote

REACH = 6.0  # s either side of the live span looked at
GAP = 3.5  # periods: the most between two peaks of one set (a pause mid-set)
LOW, HIGH = 0.4, 3.0  # a peak's prominence, of the set's, for it to be a repetition
HALF = 0.5  # periods either side of a peak whose windows are weighed
FILLED = 0.4  # of the live span's length in periods: fewer peaks than that, no count
EDGE = 0.6  # outer flank / inner flank of the end peaks: below it, a resting side
MULTIPLE = 1.6  # a period this many times the live counter's: a multiple of the true one
SHORTER = 1.25  # ... then the period is looked for up to this many times the live one


@dataclass(frozen=True)
class Track:
    """The classifier's windows over a set, as arrays: what they say of one exercise."""

    starts: np.ndarray
    ends: np.ndarray
    support: np.ndarray
    against: np.ndarray  # rest's probability, or another exercise's when likelier

    @classmethod
    def of(cls, votes: Sequence[WindowVote], exercise: str) -> Track:
        """The windows ``votes`` as they bear on ``exercise``."""
        return cls(
            np.array([w.start for w in votes]),
            np.array([w.end for w in votes]),
            np.array([w.support(exercise) for w in votes]),
            np.array([max(w.rest, _rival(w, exercise)) for w in votes]),
        )

    def says_exercise(self, start: float, end: float) -> bool:
        """The windows over [start, end], weighed by overlap, call it the exercise at least
        as much as rest or any other exercise (True when none covers it: none says
        otherwise)."""
        overlap = np.clip(np.minimum(self.ends, end) - np.maximum(self.starts, start), 0, None)
        return float(overlap @ self.support) >= float(overlap @ self.against)


def _rival(window: WindowVote, exercise: str) -> float:
    return max((p for name, p in window.exercises.items() if name != exercise), default=0.0)


@dataclass(frozen=True)
class SetCount:
    """A set counted as a whole: its repetitions and where their peaks lie."""

    reps: int
    first: float  # time of the first counted peak
    last: float  # time of the last
    period: float


def count_set(
    times: np.ndarray,
    passed: np.ndarray,
    rate: float,
    core: tuple[float, float],
    track: Track | None,
    hint: float | None = None,
) -> SetCount | None:
    """Repetitions of the set whose live span (with its margins) is ``core``, on the
    high-passed grid ``passed`` at ``times``; ``track``: the classifier's windows (None:
    the live span's peaks are the count); ``hint``: the live counter's period. None when
    the live span shows no period."""
    a, b = core
    inside = (times >= a) & (times <= b)
    stretch = passed[inside]
    found = find_repetitions(stretch, rate)
    if found is not None and hint is not None and found.period > MULTIPLE * hint:
        # Uneven repetitions with pauses: the autocorrelation's first peak above its bar
        # was two periods (a set counted 5 of 15); look again below the live period.
        shorter = find_repetitions(stretch, rate, period=hint, longest=SHORTER * hint)
        found = shorter or found
    if found is None:
        return None
    period = found.period
    chosen = None
    if track is not None:
        wide = (times >= a - REACH) & (times <= b + REACH)
        when = times[wide]
        wave = sosfiltfilt(low_pass(period, rate), passed[wide] @ found.vector)
        up = _chain(wave, when, rate, period, core, track)
        down = _chain(-wave, when, rate, period, core, track)
        chosen = _side(wave, when, round(0.5 * rate * period), up, down)
        if chosen is not None and len(chosen) < FILLED * (b - a) / period:
            return None  # a period the span's peaks do not bear out: the live count stands
    if chosen is None or not len(chosen):
        chosen = times[inside][found.index]  # the live span's own peaks
    if not len(chosen):
        return None
    return SetCount(len(chosen), float(chosen[0]), float(chosen[-1]), period)


def _chain(
    wave: np.ndarray,
    when: np.ndarray,
    rate: float,
    period: float,
    core: tuple[float, float],
    track: Track,
) -> np.ndarray | None:
    """Times of one side's peaks that make the set (None: fewer than two in the live
    span)."""
    distance = max(1.0, SPACING * (rate * period))
    index, props = find_peaks(wave, distance=distance, prominence=MIN_PROMINENCE)
    prominence = props["prominences"]
    at = when[index]
    incore = (at >= core[0]) & (at <= core[1])
    if incore.sum() < 2:
        return None
    ordered = np.sort(prominence[incore])
    typical = float(np.median(ordered[len(ordered) // 2 :]))
    strong = prominence >= PROMINENCE * typical

    def belongs(j: int) -> bool:
        if not LOW * typical <= prominence[j] <= HIGH * typical:
            return False
        return track.says_exercise(at[j] - HALF * period, at[j] + HALF * period)

    kept = np.flatnonzero(incore & strong)
    lo, hi = int(kept[0]), int(kept[-1])
    while hi - lo >= 2 and not belongs(lo):  # a set-up move taken in
        lo = next(j for j in range(lo + 1, hi + 1) if strong[j])
    while hi - lo >= 2 and not belongs(hi):  # a move after the set
        hi = max(j for j in range(lo, hi) if strong[j])
    while lo > 0 and at[lo] - at[lo - 1] <= GAP * period and belongs(lo - 1):
        lo -= 1
    while hi + 1 < len(at) and at[hi + 1] - at[hi] <= GAP * period and belongs(hi + 1):
        hi += 1
    chosen = [j for j in range(lo, hi + 1) if strong[j] or not incore[j]]
    return at[chosen]


def _side(
    wave: np.ndarray, when: np.ndarray, half: int, up: np.ndarray | None, down: np.ndarray | None
) -> np.ndarray | None:
    """The side whose peaks are the repetitions (see the module's step 4); ``half``: half a
    period in grid samples."""
    if up is None or down is None:
        return up if down is None else down
    if len(up) == len(down):
        return up
    if up[0] < down[0] and up[-1] > down[-1]:
        return down if _flanks(wave, when, up, half) < EDGE else up
    if down[0] < up[0] and down[-1] > up[-1]:
        return up if _flanks(-wave, when, down, half) < EDGE else down
    return up


def _flanks(wave: np.ndarray, when: np.ndarray, peaks: np.ndarray, half: int) -> float:
    """How far the end peaks' outer flanks fall (over ``half`` samples), of their inner
    ones (mean of both ends)."""
    half = max(1, half)

    def fall(at: float) -> tuple[float, float]:
        i = int(np.searchsorted(when, at))
        left = wave[i] - wave[max(0, i - half) : i + 1].min()
        right = wave[i] - wave[i : i + half + 1].min()
        return float(left), float(right)

    first_left, first_right = fall(peaks[0])
    last_left, last_right = fall(peaks[-1])
    return (first_left / max(first_right, 1e-9) + last_right / max(last_left, 1e-9)) / 2
