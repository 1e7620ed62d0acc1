"""The ``har`` command: one subcommand per part of the system.

Subcommands are imported lazily, so ``har windower`` never loads TensorFlow and a
missing optional dependency names the extra to install.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> (module, function, extra that provides its dependencies, one-line help)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "gateway": (
        "services.ble_gateway.app",
        "main",
        "gateway",
        "BLE / simulated / replayed wearables -> raw frames",
    ),
    "windower": ("services.windower.app", "main", "", "raw frames -> sliding windows"),
    "classifier": ("services.classifier.app", "main", "classifier", "windows -> predictions"),
    "recorder": (
        "services.recorder.app",
        "main",
        "recorder",
        "labelled Parquet recordings by command",
    ),
    "dashboard": ("services.dashboard.app", "main", "dashboard", "Streamlit dashboard"),
    "up": ("imu_har.launcher", "main", "all", "start the whole system, supervised"),
    "train": ("training.cli", "train_main", "training", "train a model artifact"),
    "evaluate": ("training.cli", "evaluate_main", "training", "evaluate a model artifact on data"),
    "tune": ("training.cli", "tune_main", "training", "hyperopt search over hyperparameters"),
}


def usage() -> str:
    """The top-level help text."""
    lines = ["usage: har <command> [options]   (har <command> --help for its options)", ""]
    lines += [f"  {name:<11} {entry[3]}" for name, entry in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand's ``main(argv)``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"har: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function, extra, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"services", "training", "imu_har"}:
            raise
        hint = f"pip install 'imu-har[{extra}]'" if extra else "pip install imu-har"
        print(
            f"har {name}: missing dependency {exc.name!r}; install it with: {hint}", file=sys.stderr
        )
        return 2
    return int(getattr(module, function)(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
