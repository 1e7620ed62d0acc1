"""Run every benchmark in turn with its default settings (``make bench``).

Each benchmark prints its own table and a ``JSON`` line; copy the numbers into
docs/benchmarks.md with the machine and date. The training benchmark needs
``../shared/datasets/seed-fitness`` and is skipped, with a message, without it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = ["windower", "gateway", "classifier", "recorder", "dashboard", "e2e", "training"]
SEED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "seed-fitness"


def main() -> int:
    """Run the benchmarks named on the command line, or all of them."""
    failed = []
    for name in sys.argv[1:] or BENCHES:
        if name == "training" and not SEED.is_dir():
            print(f"\n== training: skipped, {SEED} not found", flush=True)
            continue
        print(f"\n######## bench_{name}", flush=True)
        if subprocess.call([sys.executable, "-m", f"bench.bench_{name}"]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
