"""Realistic sets for the simulator: uneven repetitions, pauses, partial reps, set-up moves.

The default ("steady") simulator moves at a smooth cadence from the first
sample of a bout to the last. People do not: a set starts after getting into
position, repetitions differ in duration and depth, there are pauses at the
top, a half-hearted partial repetition now and then, and form breaks down when
tired. With ``style="realistic"`` (:class:`imu_har.sim.wearable.WearableFleet`)
each bout follows a :class:`BoutPlan` drawn from :class:`Realism` when it
starts; everything after that is a closed-form function of time, so a stream
generated in chunks still equals one generated at once.

A plan is a list of *cycles* (repetitions and partial repetitions; at rest the
slow standing sway), posture segments (the base pitch eases to each new
target) and *moves* (single smooth excursions: setting up, fidgeting at rest).
Counted repetitions and their end times are the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imu_har.protocol.workout import split_form

# Columns of imu_har.sim.wearable._PARAMS (kept in step with it).
FREQ, BASE, SWING, ALT, TRAVEL, SHARP, WOBBLE, JUMP = range(8)
REST_HORIZON = 3600.0  # s of standing sway (and fidgets) planned for a rest bout


@dataclass(frozen=True)
class Realism:
    """How uneven realistic sets are (the defaults follow issue 15's brief)."""

    reps: tuple[int, int] = (8, 16)  # completed repetitions per set
    fast_reps: tuple[int, int] = (15, 30)  # ... for fast exercises (cadence >= 1.5 Hz)
    duration_spread: float = 0.25  # each repetition's duration within +-25% of the set's pace
    depth_spread: float = 0.25  # each repetition's depth within +-25%
    cadence_drift: tuple[float, float] = (-0.1, 0.25)  # pace change over the set (fatigue slows)
    pause_chance: float = 0.15  # a short pause at the top after a repetition
    pause_seconds: tuple[float, float] = (0.4, 2.0)
    long_pause_chance: float = 0.15  # one longer catch-your-breath pause in the set
    long_pause_seconds: tuple[float, float] = (2.0, 4.0)
    partial_chance: float = 0.06  # a partial repetition (not counted) before a repetition
    partial_depth: tuple[float, float] = (0.1, 0.25)  # of a full one: clearly partial
    setup_seconds: tuple[float, float] = (1.5, 4.0)  # getting into position before the set
    setup_moves: tuple[int, int] = (1, 2)  # single excursions while setting up
    setup_tau: tuple[float, float] = (0.6, 1.2)  # s, posture change into position
    fatigue_chance: float = 0.3  # the last 1-3 repetitions of a correct set lose form
    fatigue_reps: tuple[int, int] = (1, 3)
    fidget_rate: float = 0.05  # single moves per second at rest (one every 20 s)


@dataclass
class BoutPlan:
    """One device's bout: cycles, posture segments and moves, in fleet seconds."""

    row: int  # label row of the bout
    start: float
    cycle_start: np.ndarray
    cycle_end: np.ndarray
    depth: np.ndarray
    cycle_row: np.ndarray
    counted: np.ndarray  # bool: a completed repetition (not partial, not sway)
    side: np.ndarray  # +1 / -1: alternating legs (lunges)
    posture_time: np.ndarray
    posture_ref: np.ndarray
    posture_target: np.ndarray
    posture_tau: np.ndarray
    move_center: np.ndarray
    move_half: np.ndarray
    move_angles: np.ndarray  # (moves, 3): pitch, roll (deg), travel (m)

    @property
    def rep_ends(self) -> np.ndarray:
        """End times of the counted repetitions."""
        return self.cycle_end[self.counted]

    def reps_at(self, t: np.ndarray) -> np.ndarray:
        """Completed repetitions at times ``t``."""
        return np.searchsorted(self.rep_ends, t, side="right")

    def base(self, t: np.ndarray) -> np.ndarray:
        """Base pitch (deg) at times ``t``."""
        j = np.maximum(np.searchsorted(self.posture_time, t, side="right") - 1, 0)
        target = self.posture_target[j]
        decay = np.exp(-np.maximum(t - self.posture_time[j], 0.0) / self.posture_tau[j])
        return target + (self.posture_ref[j] - target) * decay


def incorrect_row(labels: tuple[str, ...], row: int) -> int | None:
    """Row of the incorrect-form variant of ``labels[row]``, if the simulator has one."""
    exercise, incorrect = split_form(labels[row])
    name = f"{exercise}_Incorrect"
    return None if incorrect or name not in labels else labels.index(name)


def plan_bout(
    rng: np.random.Generator,
    params: np.ndarray,
    labels: tuple[str, ...],
    row: int,
    rest_row: int,
    start: float,
    posture: float,
    cadence: float,
    realism: Realism,
) -> BoutPlan:
    """Draw one bout: ``posture`` is the base pitch at ``start``, ``cadence`` the wearer's."""
    r = realism
    if row == rest_row:
        return _rest_plan(rng, params, row, start, posture, cadence, r)
    tau = rng.uniform(*r.setup_tau)
    # In position first: the posture has settled (4 time constants) before the first repetition.
    setup = max(rng.uniform(*r.setup_seconds), 4 * tau + 0.5)
    moves = _moves(
        rng, start + 0.3, start + setup - 0.4, int(rng.integers(*r.setup_moves, endpoint=True))
    )
    freq = params[row, FREQ] * cadence
    low, high = r.fast_reps if freq >= 1.5 else r.reps
    n = int(rng.integers(low, high, endpoint=True))
    rows = np.full(n, row)
    wrong = incorrect_row(labels, row)
    if wrong is not None and rng.random() < r.fatigue_chance:
        rows[n - int(rng.integers(*r.fatigue_reps, endpoint=True)) :] = wrong
    cycles = _cycles(rng, params, rows, start + setup, cadence, r)
    posture_time, posture_target = [start], [params[row, BASE]]
    taus = [tau]
    for c_start, c_row, prev in zip(cycles[0][1:], cycles[3][1:], cycles[3][:-1], strict=True):
        if params[c_row, BASE] != params[prev, BASE]:  # form changes: the posture follows
            posture_time.append(c_start)
            posture_target.append(params[c_row, BASE])
            taus.append(0.5)
    return _plan(row, start, posture, cycles, posture_time, posture_target, taus, moves)


def _cycles(
    rng: np.random.Generator,
    params: np.ndarray,
    rows: np.ndarray,
    t: float,
    cadence: float,
    r: Realism,
) -> tuple[np.ndarray, ...]:
    """Repetitions (one per row), partial ones and pauses from ``t``: start, end, depth, row,
    counted, side."""
    n = len(rows)
    drift = rng.uniform(*r.cadence_drift)
    long_pause = int(rng.integers(1, n)) if n > 2 and rng.random() < r.long_pause_chance else -1
    out: list[tuple[float, float, float, int, bool]] = []
    for k, row in enumerate(rows):
        period = (1 + drift * k / max(n - 1, 1)) / (params[row, FREQ] * cadence)
        if k and rng.random() < r.partial_chance:
            duration = 0.6 * period * rng.uniform(0.8, 1.2)
            out.append((t, t + duration, rng.uniform(*r.partial_depth), int(row), False))
            t += duration + rng.uniform(0.2, 0.8)
        duration = period * rng.uniform(1 - r.duration_spread, 1 + r.duration_spread)
        depth = rng.uniform(1 - r.depth_spread, 1 + r.depth_spread)
        out.append((t, t + duration, depth, int(row), True))
        t += duration
        if rng.random() < r.pause_chance:
            t += rng.uniform(*r.pause_seconds)
        if k == long_pause:
            t += rng.uniform(*r.long_pause_seconds)
    starts, ends, depths, rows_, counted = (np.array(x) for x in zip(*out, strict=True))
    side = np.where(np.arange(len(out)) % 2 == 0, 1.0, -1.0)
    return starts, ends, depths, rows_.astype(int), counted.astype(bool), side


def _rest_plan(
    rng: np.random.Generator,
    params: np.ndarray,
    row: int,
    start: float,
    posture: float,
    cadence: float,
    r: Realism,
) -> BoutPlan:
    """Standing sway (never counted) and fidgets at a random rate."""
    period = 1 / (params[row, FREQ] * cadence)
    starts = start + period * np.arange(int(REST_HORIZON / period))
    ones = np.ones(len(starts))
    cycles = (starts, starts + period, ones, np.full(len(starts), row), ones < 0, ones)
    count = int(rng.poisson(r.fidget_rate * REST_HORIZON))
    moves = _moves(rng, start + 0.5, start + REST_HORIZON, count)
    return _plan(row, start, posture, cycles, [start], [params[row, BASE]], [0.8], moves)


def _moves(rng: np.random.Generator, lo: float, hi: float, count: int) -> tuple[np.ndarray, ...]:
    """Single smooth excursions (bending, reaching, shifting) centred in [lo, hi]."""
    center = np.sort(rng.uniform(lo, max(lo, hi), count))
    half = rng.uniform(0.4, 1.0, count)  # 0.8-2 s each
    pitch = rng.choice([-1.0, 1.0], count) * rng.uniform(8.0, 35.0, count)
    roll = rng.normal(0.0, 8.0, count)
    travel = -rng.uniform(0.0, 0.3, count)
    return center, half, np.stack([pitch, roll, travel], -1).reshape(count, 3)


def _plan(
    row: int,
    start: float,
    posture: float,
    cycles: tuple[np.ndarray, ...],
    posture_time: list[float],
    posture_target: list[float],
    taus: list[float],
    moves: tuple[np.ndarray, ...],
) -> BoutPlan:
    """Assemble a plan; each posture segment eases from where the previous one was."""
    times, targets = np.array(posture_time), np.array(posture_target)
    refs = np.empty_like(times)
    refs[0] = posture
    c_start, c_end, depth, c_row, counted, side = cycles
    center, half, angles = moves
    plan = BoutPlan(
        row,
        start,
        c_start,
        c_end,
        depth,
        c_row,
        counted,
        side,
        times,
        refs,
        targets,
        np.array(taus),
        center,
        half,
        angles,
    )
    for j in range(1, len(times)):  # a segment starts where the previous one has got to
        plan.posture_ref[j] = plan.base(np.array([times[j] - 1e-9]))[0]
    return plan


def evaluate(
    plan: BoutPlan, params: np.ndarray, t: np.ndarray, amp: float
) -> tuple[np.ndarray, ...]:
    """Pitch, roll, yaw offset (deg), vertical travel (m) and jump force (g) at times ``t``.

    The same shapes as the steady simulator (imu_har.sim.wearable), per cycle:
    its own depth, duration and form (label row); still between cycles.
    """
    k = np.searchsorted(plan.cycle_start, t, side="right") - 1
    started = k >= 0
    kk = np.maximum(k, 0)
    span = plan.cycle_end[kk] - plan.cycle_start[kk]
    inside = started & (t < plan.cycle_end[kk])
    u = np.where(inside, (t - plan.cycle_start[kk]) / span, 0.0)
    p = params[np.where(started, plan.cycle_row[kk], plan.row)]
    a = amp * np.where(inside, plan.depth[kk], 0.0)
    sharp = p[:, SHARP]
    wave = 0.5 * (1 - np.tanh(sharp * np.cos(2 * np.pi * u)) / np.tanh(sharp))
    wobble = p[:, WOBBLE] * a * np.sin(4 * np.pi * u) * wave
    side = np.where(started, plan.side[kk], 1.0)
    moved = _move_offsets(plan, t)
    pitch = plan.base(t) + p[:, SWING] * a * wave + moved[:, 0]
    roll = p[:, ALT] * a * wave * side + wobble + moved[:, 1]
    travel = -p[:, TRAVEL] * a * wave + moved[:, 2]
    return pitch, roll, 0.6 * wobble, travel, _jump(u, p[:, JUMP] * np.sqrt(a))


def _jump(u: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Push-off, flight at 0 g and landing within a cycle (as the steady simulator)."""
    contact = 0.4
    push = np.where(u < contact, np.pi / (2 * contact) * np.sin(np.pi * u / contact), 0)
    dist = np.minimum(u, 1 - u)
    impact = 1.2 * np.exp(-((dist / 0.025) ** 2))
    return scale * (push + impact - 1.0 - 1.2 * 0.025 * np.sqrt(np.pi))


def _move_offsets(plan: BoutPlan, t: np.ndarray) -> np.ndarray:
    """(n, 3) pitch, roll (deg) and travel (m) of the moves under way at times ``t``."""
    out = np.zeros((len(t), 3))
    if not len(plan.move_center) or not len(t):
        return out
    lo, hi = np.searchsorted(plan.move_center, [t.min() - 1.0, t.max() + 1.0])
    for j in range(lo, hi):  # a chunk overlaps few moves (each lasts at most 2 s)
        x = (t - plan.move_center[j]) / plan.move_half[j]
        shape = np.where(np.abs(x) < 1, 0.5 * (1 + np.cos(np.pi * x)), 0.0)
        out += shape[:, None] * plan.move_angles[j]
    return out
