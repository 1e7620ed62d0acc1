"""Workout benchmark: sets, repetitions and form of simulated wearers, per exercise.

Each wearer is a random simulated person (imu_har.sim, ``style="realistic"``:
set-up moves, uneven repetitions, pauses, partial repetitions, failing form)
at a random sample rate from 12.5 to 200 Hz doing a random session of sets.
Predictions come from the demo model (models/default, or ``--model DIR`` to
benchmark a candidate) run with ONNX Runtime on
windows cut as the live windower cuts them; frames of 13 samples and
predictions go through the service's own core in arrival order
(training/reps.py). Scores: bench/workout_eval.py.

Seeds: wearers of ``--seeds tune`` (seed 1000 + i) and ``tune2`` (2000 + i) were
used while tuning; ``--seeds report`` (seed 7000 + i) never were, and are the
published numbers. ``old-report`` (5000 + i) were the published numbers up to
phase 4 (2026-12-04); after four phases had looked at them they were retired.

    python -m bench.bench_workout --wearers 30 --seeds report
    python -m bench.bench_workout --live --wearers 4      # through the real service
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import report
from bench.workout_eval import Score, score, table
from imu_har.protocol.codec import DEFAULT_CHANNELS, Frame
from imu_har.protocol.messages import Prediction
from imu_har.protocol.workout import RepEvent, SetEvent
from imu_har.sim.simulation import WearableSimulator, random_profile
from imu_har.sim.workouts import TrueSet, play_workout, random_workout
from services.workout.core import WorkoutCore
from services.workout.settings import WorkoutSettings
from training.reps import OnnxModel, frames_of, replay

SEEDS = {"tune": 1000, "tune2": 2000, "old-report": 5000, "report": 7000}
RATES = (12.5, 25.0, 50.0, 100.0, 200.0)
T0 = 1_790_000_000.0  # Unix time the simulated sessions start at
MODEL = Path(__file__).resolve().parents[1] / "models" / "default"


@dataclass
class Wearer:
    """One simulated session: its frames, predictions and truth (times from T0)."""

    device: str
    rate: float
    frames: list[Frame]
    predictions: list[Prediction]
    truth: list[TrueSet]


def make_wearer(
    index: int, base: int, model: OnnxModel, sets: int = 8, rate: float | None = None
) -> Wearer:
    """Wearer ``index`` of a seed family: deterministic (``rate``: instead of a random one)."""
    seed = base + index
    rng = np.random.default_rng(seed)
    drawn = float(rng.choice(RATES))
    rate = drawn if rate is None else rate
    sim = WearableSimulator(random_profile(rng), rate=rate, seed=seed, style="realistic")
    steps = random_workout(rng, sets=sets)
    steps[-1] = (steps[-1][0], 15.0)  # a rest long enough to end the last set
    rec = play_workout(sim, steps)
    device = f"w{seed}"
    times = T0 + rec.times
    values = rec.samples.astype(np.float64)
    frames = list(frames_of(device, times, values, rate))
    preds = model.predictions(device, times, values, DEFAULT_CHANNELS)
    return Wearer(device, rate, frames, preds, rec.sets)


def run_offline(wearers: list[Wearer], settings: WorkoutSettings) -> tuple[dict[str, Score], float]:
    """Score every wearer through the core; returns the scores and core seconds spent."""
    scores: dict[str, Score] = defaultdict(Score)
    spent = 0.0
    for w in wearers:
        core = WorkoutCore(settings)
        started = time.perf_counter()
        out = replay(core, w.frames, w.predictions)
        spent += time.perf_counter() - started
        sets = [m for _, m in out if isinstance(m, SetEvent)]
        reps = [(at, m) for at, m in out if isinstance(m, RepEvent)]
        for name, sc in score(w.truth, sets, reps, T0).items():
            scores[name].add(sc)
    return scores, spent


def throughput(model: OnnxModel) -> dict[str, float]:
    """The core's cost per frame and per prediction for a 50 Hz wearer (13-sample frames),
    and what that makes at 1,000 such wearers (3,846 frames and 2,500 predictions a second).
    """
    frame_s = pred_s = 0.0
    frames = preds = 0
    for index in range(3):
        w = make_wearer(index, SEEDS["tune"], model, rate=50.0)
        core = WorkoutCore(WorkoutSettings())
        items = sorted(
            [(f.receive_time, 0, f) for f in w.frames]
            + [(p.window_end + 0.15, 1, p) for p in w.predictions],
            key=lambda a: (a[0], a[1]),
        )
        for _, kind, item in items:
            started = time.perf_counter()
            core.push(item)
            spent = time.perf_counter() - started
            if kind:
                pred_s, preds = pred_s + spent, preds + 1
            else:
                frame_s, frames = frame_s + spent, frames + 1
    us_frame, us_pred = 1e6 * frame_s / frames, 1e6 * pred_s / preds
    share = (3846 * us_frame + 2500 * us_pred) / 1e6
    return {"us_per_frame": us_frame, "us_per_prediction": us_pred, "core_share_1000": share}


def main() -> None:
    """Run the offline benchmark (and optionally the live one)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wearers", type=int, default=30)
    parser.add_argument("--sets", type=int, default=8, help="sets per wearer")
    parser.add_argument("--seeds", choices=sorted(SEEDS), default="report")
    parser.add_argument("--first", type=int, default=0, help="first wearer index")
    parser.add_argument("--verbose", action="store_true", help="print each wrong set")
    parser.add_argument("--live", type=int, default=0, help="also this many wearers, live")
    parser.add_argument("--live-sets", type=int, default=3, help="sets per live wearer")
    parser.add_argument(
        "--model", type=Path, default=MODEL, help="model artifact whose predictions are replayed"
    )
    args = parser.parse_args()
    model = OnnxModel(args.model)
    print(f"model: {args.model}")
    cost = throughput(model)
    print(
        f"core: {cost['us_per_frame']:.1f} us per 13-sample frame, "
        f"{cost['us_per_prediction']:.1f} us per prediction: "
        f"{100 * cost['core_share_1000']:.0f}% of a core at 1,000 wearables x 50 Hz"
    )
    started = time.perf_counter()
    wearers = [
        make_wearer(i, SEEDS[args.seeds], model, args.sets)
        for i in range(args.first, args.first + args.wearers)
    ]
    made = time.perf_counter() - started
    scores, spent = run_offline(wearers, WorkoutSettings())
    samples = sum(len(f.samples) for w in wearers for f in w.frames)
    frames = sum(len(w.frames) for w in wearers)
    print(
        f"{len(wearers)} wearers ({args.seeds} seeds), simulated+classified in {made:.0f} s; "
        f"core {spent:.2f} s for {frames} frames ({1e6 * spent / max(frames, 1):.1f} us/frame, "
        f"{samples / max(spent, 1e-9):,.0f} samples/s)"
    )
    report(f"workout offline ({args.seeds} seeds)", table(scores))
    if args.verbose:
        for name, sc in sorted(scores.items()):
            print(name, "count errors:", sorted(sc.errors))
    if args.live:
        from bench.workout_live import run_live

        live = [
            make_wearer(i, SEEDS[args.seeds] + 500, model, args.live_sets) for i in range(args.live)
        ]
        live_scores, usage = run_live(live, T0)
        print(f"live: service CPU {usage['cpu_percent']:.1f}%, RSS {usage['rss_mb']:.0f} MB")
        report(f"workout live ({args.live} wearers, {args.seeds} seeds)", table(live_scores))


if __name__ == "__main__":
    main()
