"""Scoring the workout service against simulated truth (used by bench/bench_workout.py).

A detected set matches a true set of the same exercise when they overlap by at
least half of the shorter one (each matched once, largest overlap first). A
true set is counted within +-1 (or exactly) when its match has that many
repetitions; a missed set is a miss whatever its size. A repetition event
matches the true repetition it overlaps most; its latency is its arrival time
minus that repetition's true end, and its form is right when it equals the
true form (``unknown`` is never right). A repetition event that overlaps no
true repetition is *stray* (a set-up move or a fidget published live).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from imu_har.protocol.workout import RepEvent, SetEvent
from imu_har.sim.workouts import TrueRep, TrueSet

FORM_EXERCISES = ("Pushup", "Situp")


@dataclass
class Score:
    """Tallies of one exercise (or all)."""

    true_sets: int = 0
    detected_sets: int = 0
    matched: int = 0
    exact: int = 0
    within_one: int = 0
    errors: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    form_right: int = 0
    form_total: int = 0
    stray: int = 0  # repetition events that overlap no true repetition

    def add(self, other: Score) -> None:
        """Sum another tally into this one."""
        for name in ("true_sets", "detected_sets", "matched", "exact", "within_one"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors
        self.latencies += other.latencies
        self.form_right += other.form_right
        self.form_total += other.form_total
        self.stray += other.stray

    def row(self, name: str) -> dict[str, object]:
        """One table row."""
        lat = np.asarray(self.latencies)
        return {
            "exercise": name,
            "sets": self.true_sets,
            "exact_%": _pct(self.exact, self.true_sets),
            "within1_%": _pct(self.within_one, self.true_sets),
            "precision_%": _pct(self.matched, self.detected_sets),
            "recall_%": _pct(self.matched, self.true_sets),
            "rep_latency_p50_s": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "rep_latency_p95_s": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
            "form_%": _pct(self.form_right, self.form_total) if self.form_total else None,
            "form_reps": self.form_total,
            "stray_reps": self.stray,
        }


def _pct(a: int, b: int) -> float:
    return round(100.0 * a / b, 1) if b else 0.0


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def score(
    truth: Sequence[TrueSet],
    sets: Sequence[SetEvent],
    reps: Sequence[tuple[float, RepEvent]],
    offset: float = 0.0,
) -> dict[str, Score]:
    """Per exercise: ``truth`` in simulator time + ``offset``; ``reps`` with arrival times."""
    scores: dict[str, Score] = defaultdict(Score)
    for s in sets:
        scores[s.exercise].detected_sets += 1
    pairs = []
    for i, t in enumerate(truth):
        t0, t1 = t.start + offset, t.end + offset
        for j, d in enumerate(sets):
            if d.exercise != t.exercise:
                continue
            shared = _overlap(t0, t1, d.start, d.end)
            if shared >= 0.5 * max(min(t1 - t0, d.end - d.start), 1e-6):
                pairs.append((shared, i, j))
    match: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(pairs, reverse=True):
        if i not in match and j not in used:
            match[i], _ = j, used.add(j)
    by_set = defaultdict(list)
    for at, r in reps:
        by_set[r.set].append((at, r))
        if not any(
            _overlap(tr.start + offset, tr.end + offset, r.start, r.end) > 0
            for t in truth
            for tr in t.reps
        ):
            scores[r.exercise].stray += 1  # a set-up move or fidget published as one
    for i, t in enumerate(truth):
        sc = scores[t.exercise]
        sc.true_sets += 1
        if i not in match:
            sc.errors.append(-len(t.reps))
            continue
        d = sets[match[i]]
        sc.matched += 1
        error = d.reps - len(t.reps)
        sc.errors.append(error)
        sc.exact += error == 0
        sc.within_one += abs(error) <= 1
        _score_reps(sc, t, by_set[d.set], offset)
    return scores


def _score_reps(
    sc: Score, t: TrueSet, reps: Sequence[tuple[float, RepEvent]], offset: float
) -> None:
    for at, r in reps:
        best: TrueRep | None = None
        best_shared = 0.0
        for tr in t.reps:
            shared = _overlap(tr.start + offset, tr.end + offset, r.start, r.end)
            if shared > best_shared:
                best, best_shared = tr, shared
        if best is None:
            continue
        sc.latencies.append(at - (best.end + offset))
        if t.exercise in FORM_EXERCISES:
            sc.form_total += 1
            sc.form_right += r.form == best.form


def table(scores: dict[str, Score]) -> list[dict[str, object]]:
    """Rows per exercise and a total row."""
    total = Score()
    rows = []
    for name in sorted(scores):
        rows.append(scores[name].row(name))
        total.add(scores[name])
    rows.append(total.row("all"))
    return rows
