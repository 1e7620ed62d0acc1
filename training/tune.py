"""Hyperparameter search with hyperopt TPE on grouped cross-validation accuracy.

Trials are pickled to ``<out>/trials.pkl`` after every trial (hyperopt's
``trials_save_file``), so an interrupted search resumes where it stopped:
``--trials N`` is the total number of trials of the search. The best trial's
parameters go to ``<out>/best.json`` (usable with ``har train --params``), all
trials to ``<out>/trials.json``. :func:`objective` is a module-level function
of one point (the point carries the data settings), so it also runs on
MongoTrials / SparkTrials workers (see docs/training.md).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.errors import DataError
from training.fit import Progress
from training.params import TrainParams

logger = logging.getLogger(__name__)
TRIALS_FILE = "trials.pkl"
BEST_FILE = "best.json"
LOG_FILE = "trials.json"
_WINDOW_CACHE: dict[str, Any] = {}


def build_space(
    data: dict[str, Any],
    base: TrainParams,
    max_epochs: int = 60,
    choices: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """The search space around ``base``; ``data`` = path, layout, cv (constants).

    ``choices`` replaces the candidate lists of window, hop, units, layers or batch_size.
    """
    from hyperopt import hp

    w, h = base.window, base.hop
    lists: dict[str, list[int]] = {
        "window": sorted({max(4, round(w * f)) for f in (0.5, 0.75, 1.0, 1.5)}),
        "hop": sorted({max(1, round(h * f)) for f in (0.5, 1.0, 2.0)}),
        "units": [16, 32, 50, 64, 96],
        "layers": [1, 2, 3],
        "batch_size": [16, 32, 64, 128],
    }
    lists.update(choices or {})
    low = max(1, min(10, max_epochs // 2))
    return {
        "data": data,
        "fixed": {"arch": base.arch, "rate": base.rate, "seed": base.seed, "noise": base.noise},
        **{name: hp.choice(name, values) for name, values in lists.items()},
        "dropout": hp.uniform("dropout", 0.0, 0.6),
        "lr": hp.loguniform("lr", math.log(1e-4), math.log(1e-2)),
        "epochs": hp.quniform("epochs", low, max(low + 1, max_epochs), 5 if low >= 10 else 1),
    }


def point_params(point: dict[str, Any]) -> TrainParams:
    """TrainParams of one sampled point."""
    keys = ("window", "hop", "units", "layers", "batch_size", "epochs")
    fields: dict[str, Any] = {**point["fixed"], **{k: int(point[k]) for k in keys}}
    return TrainParams(**fields, dropout=float(point["dropout"]), lr=float(point["lr"]))


def _windows(data: dict[str, Any], params: TrainParams):
    from training.api import load_windows

    key = json.dumps([data, params.window, params.hop, params.rate], sort_keys=True)
    if key not in _WINDOW_CACHE:
        layout = {k: v for k, v in data.get("layout", {}).items() if v is not None}
        if layout.get("channels") is not None:
            layout["channels"] = tuple(layout["channels"])
        _WINDOW_CACHE.clear()  # one window geometry at a time keeps memory flat
        _WINDOW_CACHE[key] = load_windows(data["path"], params, **layout)[0]
    return _WINDOW_CACHE[key]


def objective(point: dict[str, Any]) -> dict[str, Any]:
    """Loss = -mean grouped-CV accuracy of one point (status fail on bad data)."""
    from hyperopt import STATUS_FAIL, STATUS_OK

    from training.evaluation import cross_validate

    started = time.monotonic()
    params = point_params(point)
    try:
        ws = _windows(point["data"], params)
        cv = cross_validate(ws, params, point["data"]["cv"])
    except DataError as exc:  # e.g. a window longer than some recording
        return {"status": STATUS_FAIL, "error": str(exc), "params": asdict(params)}
    return {
        "status": STATUS_OK,
        "loss": -cv["mean_accuracy"],
        "mean_accuracy": cv["mean_accuracy"],
        "min_accuracy": cv["min_accuracy"],
        "mean_macro_f1": cv["mean_macro_f1"],
        "params": asdict(params),
        "seconds": time.monotonic() - started,
    }


def tune(
    data: dict[str, Any],
    out_dir: str | Path,
    trials: int,
    base: TrainParams,
    *,
    max_epochs: int = 60,
    progress: Progress | None = None,
    choices: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a search of ``trials`` trials in total; returns the best result."""
    import numpy as np
    from hyperopt import Trials, fmin, tpe

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save = out / TRIALS_FILE
    history = _load_trials(save) if save.exists() else Trials()
    done = len(history.trials)
    if progress:
        progress(f"search in {out}: {done} trial(s) done, {max(0, trials - done)} to run")

    def logged(point: dict[str, Any]) -> dict[str, Any]:
        result = objective(point)
        if progress:
            progress(_describe(len(history.trials), trials, result))
        return result

    if trials > done:
        fmin(
            logged,
            build_space(data, base, max_epochs, choices),
            algo=tpe.suggest,
            max_evals=trials,
            trials=history,
            rstate=np.random.default_rng(base.seed + done),
            trials_save_file=str(save),
            show_progressbar=False,
        )
    return _write_results(history, out)


def _load_trials(path: Path):
    import pickle

    try:
        with path.open("rb") as f:
            return pickle.load(f)  # noqa: S301 (the user's own --out trials file)
    except Exception as exc:  # any unpickling failure: say which file
        raise DataError(f"{path} is not a readable hyperopt trials file: {exc}") from exc


def _describe(n: int, total: int, result: dict[str, Any]) -> str:
    p = result["params"]
    shape = (
        f"window {p['window']} hop {p['hop']} units {p['units']}x{p['layers']} "
        f"dropout {p['dropout']:.2f} lr {p['lr']:.4f} batch {p['batch_size']} epochs {p['epochs']}"
    )
    if result["status"] != "ok":
        return f"trial {n}/{total}: {shape} -> failed: {result.get('error')}"
    return (
        f"trial {n}/{total}: {shape} -> mean acc {result['mean_accuracy']:.4f} "
        f"(min {result['min_accuracy']:.4f}) in {result['seconds']:.0f} s"
    )


def _write_results(history, out: Path) -> dict[str, Any]:
    results = [t["result"] for t in history.trials]
    (out / LOG_FILE).write_text(json.dumps(results, indent=1) + "\n")
    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        raise DataError(f"no successful trial in {out}; see {LOG_FILE}")
    best = min(ok, key=lambda r: r["loss"])
    summary = {
        "params": best["params"],
        "mean_accuracy": best["mean_accuracy"],
        "min_accuracy": best["min_accuracy"],
        "mean_macro_f1": best["mean_macro_f1"],
        "trials": len(results),
    }
    (out / BEST_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    return summary
