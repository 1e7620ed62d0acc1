"""Training benchmark on seed-fitness: leave-one-session-out over sessions 1-18.

Compares the default model config, other architectures (by name), an optional
tuned config (``--tuned best.json``) and a statistical baseline, ``logreg``
(logistic regression on per-channel window statistics). Prints mean/min accuracy, macro-F1,
per-class recall and the time to train the default model on all 18 sessions.

    python -m bench.bench_training [--configs default,logreg,original,stats] [--tuned best.json]
    python -m bench.bench_training --seeds 0,1,2,3,4          # the default, once per seed
    python -m bench.bench_training --recordings-minutes 10    # time to train on recordings

Needs /work/shared/datasets/seed-fitness (not part of the repository), except
``--recordings-minutes``: simulated sessions written by the recorder's own core
(50 Hz, nine channels), read and trained on as ``har trainer`` does (its
sessions -> :func:`training.recorded.load_sessions` -> ``train_artifact``, default
parameters, no cross-validation), timed per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(
    os.environ.get(
        "HAR_SEED_FITNESS",
        "/work/shared/datasets/seed-fitness/seed_fitness_sessions_01-18.parquet",
    )
)
LAYOUT: dict[str, Any] = {"group_col": "session", "label_col": "activity", "order_col": "index"}
PERCENTILES = (10, 25, 50, 75, 90)


def window_stats(x: np.ndarray) -> np.ndarray:
    """Per-channel mean, std, min, max and percentiles of each window."""
    parts = [x.mean(1), x.std(1), x.min(1), x.max(1)]
    parts += list(np.percentile(x, PERCENTILES, axis=1))
    return np.concatenate(parts, axis=1)


def stats_logo(ws) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """LOSO of logistic regression on window statistics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from training.evaluation import grouped_folds, metrics

    labels = sorted(set(ws.labels))
    feats = window_stats(ws.x.astype(np.float64))
    folds, y_true, y_pred = [], [], []
    for train, test in grouped_folds(ws.groups, "logo"):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        clf.fit(feats[train], ws.labels[train])
        pred = clf.predict(feats[test])
        m = metrics(ws.labels[test], pred, labels)
        folds.append({"test_groups": sorted(set(ws.groups[test])), "accuracy": m["accuracy"]})
        y_true += ws.labels[test].tolist()
        y_pred += pred.tolist()
    acc = [f["accuracy"] for f in folds]
    return {
        "folds": folds,
        "mean_accuracy": float(np.mean(acc)),
        "min_accuracy": float(np.min(acc)),
        "pooled": metrics(y_true, y_pred, labels),
    }


def row(name: str, res: dict[str, Any], seconds: float) -> str:
    """One markdown table row."""
    pooled = res["pooled"]
    recall = " / ".join(f"{v['recall']:.3f}" for v in pooled["per_class"].values())
    return (
        f"| {name} | {res['mean_accuracy']:.4f} | {res['min_accuracy']:.4f} | "
        f"{pooled['macro_f1']:.4f} | {recall} | {seconds:.0f} s |"
    )


def recordings_run(minutes: float, out: Path) -> dict[str, Any]:
    """Train the default model on ``minutes`` of simulated recordings; seconds per phase."""
    from imu_har.sim.simulation import ACTIVITIES
    from services.trainer.catalog import read_manifest
    from tests.support.trainer import record_sessions
    from training.api import train_artifact
    from training.fit import event_fields
    from training.recorded import load_sessions

    subjects = ("ann", "bob")
    specs = [(f"w{i + 1}", label, s) for i, s in enumerate(subjects) for label in ACTIVITIES]
    seconds = minutes * 60 / len(specs)
    ids = record_sessions(out / "data", specs, seconds=seconds)
    marks = {"start": time.monotonic()}

    def progress(line: str) -> None:
        fields = event_fields(line)
        if fields.get("kind") == "phase":
            marks[str(fields["phase"])] = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    manifests = [read_manifest(out / "data", s) for s in ids]
    table = load_sessions(out / "data", [m for m in manifests if m])
    marks["read"] = time.monotonic()
    spec = train_artifact(table, out / "model", progress=progress)
    marks["end"] = time.monotonic()
    return {
        "minutes": minutes,
        "rows": len(table),
        "sessions": len(ids),
        "windows": spec.training["n_windows"],
        "read_s": marks["read"] - marks["start"],
        "window_s": marks["fit"] - marks["read"],
        "fit_s": marks["export"] - marks["fit"],
        "export_s": marks["end"] - marks["export"],
        "total_s": marks["end"] - marks["start"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print a markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--configs",
        default="default,logreg",
        help="comma list: default, logreg (baseline), or an architecture name",
    )
    parser.add_argument("--tuned", help="best.json from har tune (adds a 'tuned' config)")
    parser.add_argument("--json", help="write all results here")
    parser.add_argument(
        "--seeds",
        help="comma list of training seeds: run each neural config once per seed "
        "(rows 'default@seed=N')",
    )
    parser.add_argument(
        "--recordings-minutes",
        type=float,
        help="instead: time the default training on this many minutes of simulated recordings",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.recordings_minutes:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
            res = recordings_run(args.recordings_minutes, Path(tmp))
        print(json.dumps(res, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return 0
    from training.api import load_windows
    from training.evaluation import cross_validate
    from training.fit import fit_model, stderr_progress
    from training.params import TrainParams, load_params

    base = TrainParams(rate=2.0, window=20, hop=5)
    configs: dict[str, TrainParams | None] = {}
    for name in args.configs.split(","):
        arch = None if name in ("default", "logreg") else name
        if name == "logreg":
            configs[name] = None
        elif args.seeds:
            for seed in args.seeds.split(","):
                configs[f"{name}@seed={seed}"] = base.with_overrides(arch=arch, seed=int(seed))
        else:
            configs[name] = base.with_overrides(arch=arch)
    if args.tuned:
        configs["tuned"] = load_params(args.tuned, base)
    ws, _, _ = load_windows(DATA, base, **LAYOUT)
    print(f"seed-fitness: {len(ws)} windows, {len(set(ws.groups))} sessions", file=sys.stderr)
    results: dict[str, Any] = {}
    rows = []
    for name, params in configs.items():
        started = time.monotonic()
        if params is None:
            res = stats_logo(ws)
        else:
            print(f"== {name}: {params}", file=sys.stderr)
            own = ws  # a tuned config may have its own window geometry
            if (params.window, params.hop) != (base.window, base.hop):
                own = load_windows(DATA, params, **LAYOUT)[0]
            res = cross_validate(own, params, "logo", stderr_progress)
            res["params"] = params.model_params()
        seconds = time.monotonic() - started
        res["seconds"] = seconds
        results[name] = res
        rows.append(row(name, res, seconds))
        print(rows[-1], file=sys.stderr)
        if args.json:  # after every config: a long run leaves its partial results
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if configs.get("default") is not None:
        started = time.monotonic()
        fit_model(ws, base)
        results["default_fit_all_seconds"] = time.monotonic() - started
    labels = " / ".join(sorted(set(ws.labels)))
    print(f"| config | LOSO mean acc | min acc | macro-F1 (pooled) | recall ({labels}) | time |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    if "default_fit_all_seconds" in results:
        seconds = results["default_fit_all_seconds"]
        print(f"\ndefault model, fit on all 18 sessions: {seconds:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
