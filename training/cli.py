"""``har train``, ``har evaluate`` and ``har tune``: thin argparse shells over the API.

Every :class:`DataError` (bad columns, NaN rows, too-short recordings, damaged
artifacts, ...) is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

from training.errors import DataError
from training.params import TrainParams, load_params


def _layout_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data layout (defaults fit the recorder's dataset)")
    g.add_argument("--data", required=True, help="Parquet file, recorder dataset dir, or CSV")
    g.add_argument("--group-col", help="recording/session column (default: session)")
    g.add_argument("--label-col", help="label column (default: label, else activity)")
    g.add_argument("--order-col", help="sample order column (times = rank / rate)")
    g.add_argument("--time-col", help="sample time column in seconds (default: time if present)")
    g.add_argument("--channels", nargs="+", help="channel columns (space or comma separated)")


def _layout(args: argparse.Namespace) -> dict[str, Any]:
    channels = None
    if args.channels:
        channels = tuple(c for item in args.channels for c in item.split(",") if c)
    return {
        "group_col": args.group_col,
        "label_col": args.label_col,
        "order_col": args.order_col,
        "time_col": args.time_col,
        "channels": channels,
    }


def _param_args(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainParams` field (``batch_size`` -> ``--batch-size``).

    Type, help and default come from the field, so ``--help`` shows the real
    default; every flag's own default is None, so only given flags override
    ``--params``.
    """
    g = parser.add_argument_group("model and windows (override --params)")
    g.add_argument("--params", help="JSON of parameters, e.g. best.json from har tune")
    hints = typing.get_type_hints(TrainParams)
    for f in fields(TrainParams):
        help_text = f.metadata["help"]
        if f.default is not None:
            help_text += f" (default: {f.default})"
        g.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_scalar(hints[f.name]),
            choices=f.metadata.get("choices"),
            help=help_text,
        )


def _scalar(annotation: Any) -> Callable[[str], Any]:
    """``int``, ``float`` or ``str`` out of an annotation such as ``float | None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    kind = args[0] if args else annotation
    if kind not in (int, float, str):
        raise TypeError(f"no command-line type for {annotation!r}")
    return cast(Callable[[str], Any], kind)


def _params(args: argparse.Namespace) -> TrainParams:
    base = load_params(args.params) if args.params else TrainParams()
    return base.with_overrides(**{f.name: getattr(args, f.name) for f in fields(TrainParams)})


def _cv(value: str) -> int | str:
    if value == "logo":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("--cv takes K (>= 2), 0 or 'logo'") from None


def _progress(quiet: bool) -> Callable[[str], None] | None:
    from training.fit import stderr_progress

    return None if quiet else stderr_progress


def _run(prog: str, body: Callable[[], int]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return body()
    except DataError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


def train_main(argv: Sequence[str] | None = None) -> int:
    """``har train``: windows -> model -> artifact directory."""
    parser = argparse.ArgumentParser(prog="har train", description="Train a model artifact.")
    _layout_args(parser)
    parser.add_argument("--out", required=True, help="artifact directory to write")
    _param_args(parser)
    parser.add_argument(
        "--cv", type=_cv, help="grouped K-fold first (0 or 'logo': leave one group out)"
    )
    parser.add_argument("--name", help="model name in spec.json")
    parser.add_argument(
        "--channel-units", help="unit of each channel, comma separated (default: g, deg/s, uT)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    args = parser.parse_args(argv)

    def body() -> int:
        from training.api import train_artifact

        started = time.monotonic()
        spec = train_artifact(
            args.data,
            args.out,
            params=_params(args),
            cv=args.cv,
            progress=_progress(args.quiet),
            name=args.name,
            layout=_layout(args),
            channel_units=args.channel_units.split(",") if args.channel_units else None,
        )
        t: dict[str, Any] = spec.training
        print(
            f"model {spec.name} version {spec.version} -> {args.out}\n"
            f"  {t['n_windows']} windows from {t['n_recordings']} recordings in "
            f"{len(t['groups'])} groups; {len(spec.labels)} labels, {len(spec.channels)} "
            f"channels; window {spec.window} hop {spec.hop} at {spec.rate:g} Hz"
        )
        cv = spec.metrics.get("cv")
        if isinstance(cv, dict):
            per_fold = ", ".join(f"{f['accuracy']:.3f}" for f in cv["folds"])
            print(
                f"  grouped CV ({cv['k']} folds): mean accuracy {cv['mean_accuracy']:.4f}, "
                f"min {cv['min_accuracy']:.4f}, mean macro-F1 {cv['mean_macro_f1']:.4f}\n"
                f"  per fold: {per_fold}"
            )
        else:
            print(
                f"  training accuracy {spec.metrics['train_accuracy']:.4f} "
                "(not a validation score: use --cv K for an honest estimate)"
            )
        print(f"  done in {time.monotonic() - started:.0f} s")
        return 0

    return _run("har train", body)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``har evaluate``: accuracy, macro-F1, per-class results and counting accuracy."""
    parser = argparse.ArgumentParser(prog="har evaluate", description="Evaluate a model artifact.")
    parser.add_argument("--model", required=True, help="artifact directory")
    _layout_args(parser)
    parser.add_argument("--json", help="write the report here (and a confusion-matrix PNG beside)")
    parser.add_argument(
        "--no-counting",
        action="store_true",
        help="skip counting accuracy (the workout core on sessions with counted reps)",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        from training.api import evaluate_artifact

        layout = {k: v for k, v in _layout(args).items() if v is not None}
        report = evaluate_artifact(args.model, args.data, **layout)
        print(
            f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
            f"({report['n_windows']} windows)"
        )
        for label, m in report["per_class"].items():
            print(
                f"  {label:<20} precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
                f"support {m['support']}"
            )
        if report["unknown_labels"]:
            print(f"  labels the model does not know: {report['unknown_labels']}")
        if not args.no_counting:
            report["counting"] = _counting(args.model, args.data)
        if args.json:
            from training.evaluation import plot_confusion

            path = Path(args.json)
            path.write_text(json.dumps(report, indent=1) + "\n")
            plot_confusion(report, path.with_suffix(".png"))
            print(f"report: {path} and {path.with_suffix('.png')}")
        return 0

    return _run("har evaluate", body)


MAX_LISTED = 20  # sessions whose count is off, printed (all of them are in --json)


def _counting(model: str, data: str) -> dict[str, Any] | None:
    """Print and return the counting accuracy on ``data``'s sessions with counted reps."""
    from training.evaluation import evaluate_counting

    counting = evaluate_counting(model, data)
    if counting is None:
        if (Path(data) / "sessions").is_dir():
            print(
                "counting: no session carries the repetitions the person counted "
                "(the Record or Sessions page, or the recorder's set_reps command)"
            )
        return None
    print(
        f"counting ({counting['sessions']} sessions with counted reps, the workout core): "
        f"exact {counting['exact']:.0%}  within ±1 {counting['within_1']:.0%}  "
        f"mean absolute error {counting['mae']:.2f} reps (bias {counting['bias']:+.2f})"
    )
    off = [r for r in counting["per_session"] if r["found"] != r["counted"]]
    for row in off[:MAX_LISTED]:
        print(
            f"  {row['session']:<40} {row['label']:<18} counted {row['counted']:>4}  "
            f"found {row['found']:>4} in {row['sets']} set(s)"
        )
    if len(off) > MAX_LISTED:
        print(f"  ... and {len(off) - MAX_LISTED} more (--json lists every session)")
    return counting


def tune_main(argv: Sequence[str] | None = None) -> int:
    """``har tune``: hyperopt TPE over window, hop, units, layers, dropout, lr, batch, epochs."""
    parser = argparse.ArgumentParser(prog="har tune", description="Hyperparameter search.")
    _layout_args(parser)
    parser.add_argument("--trials", type=int, required=True, help="total trials of the search")
    parser.add_argument("--out", required=True, help="search directory (resumes if it exists)")
    parser.add_argument("--cv", type=_cv, default=5, help="grouped folds per trial (default 5)")
    parser.add_argument("--max-epochs", type=int, default=60)
    _param_args(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        from training.tune import BEST_FILE, tune

        base = _params(args)
        if base.rate is None:
            from training.api import as_table
            from training.data import data_rate

            base = base.with_overrides(rate=data_rate(as_table(args.data), None))
        from training.api import load_windows
        from training.evaluation import check_splittable

        layout = _layout(args)
        check_splittable(load_windows(args.data, base, **layout)[0])  # fail fast on bad data
        data = {"path": str(Path(args.data).resolve()), "layout": layout, "cv": args.cv}
        started = time.monotonic()
        best = tune(
            data, args.out, args.trials, base, max_epochs=args.max_epochs, progress=_progress(False)
        )
        print(
            f"best of {best['trials']} trials: mean accuracy {best['mean_accuracy']:.4f} "
            f"(min {best['min_accuracy']:.4f}) with {best['params']}\n"
            f"  -> {Path(args.out) / BEST_FILE} (use: har train --params ...); "
            f"{time.monotonic() - started:.0f} s"
        )
        return 0

    return _run("har tune", body)
