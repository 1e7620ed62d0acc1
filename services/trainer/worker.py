"""The training process of ``har trainer`` (the only part that loads TensorFlow).

``python -m services.trainer.worker`` reads one job (a :class:`~services.trainer.catalog.Plan`
plus ``job``, ``data_dir``, ``models_dir``, ``threads``, ``nice``) as JSON on standard input,
trains with :func:`training.api.train_artifact`, and writes one JSON object per
line on its standard output: the progress events of :mod:`training.fit`, then
``{"kind": "result", ...}`` or ``{"kind": "error", "error": ...}``. Anything a
library prints goes to standard error (file descriptor 1 is moved there first),
so the event stream stays JSON.

The artifact is written into ``<models>/.partial-<job>/`` and renamed to
``<models>/<name>-<version>/`` once complete: a reader (the classifier) never
sees half an artifact, and an existing directory of that name (the same
content hash, so the same model) is never replaced, perhaps while it is served.
The service removes the partial directory of a process it cancelled.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

PARTIAL_PREFIX = ".partial-"


def partial_dir(models_dir: Path, job: str) -> Path:
    """Where a job writes its artifact before the rename."""
    return models_dir / f"{PARTIAL_PREFIX}{job}"


def _events_stream() -> TextIO:
    """A private copy of standard output for events; fd 1 then points at stderr."""
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def _threads(threads: int) -> None:
    if threads > 0:  # before TensorFlow starts: its pools read these once
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(job: dict[str, Any], emit: Any) -> dict[str, Any]:
    """Train the job; returns the result event (artifact, version, score, cv)."""
    from training.api import train_artifact
    from training.fit import event_fields
    from training.params import TrainParams
    from training.recorded import load_sessions

    models = Path(job["models_dir"])
    work = partial_dir(models, job["job"])
    emit({"kind": "phase", "phase": "loading"})
    table = load_sessions(job["data_dir"], job["sessions"])
    spec = train_artifact(
        table,
        work,
        params=TrainParams(**job["params"]),
        cv=job["cv"],
        progress=lambda line: emit(event_fields(line)),
        name=job["name"],
        layout={"group_col": "session", "label_col": "label", "channels": tuple(job["channels"])},
        groups=job["groups"],
        grouping=job["grouping"],
    )
    final = models / f"{job['name']}-{spec.version}"
    try:
        work.rename(final)
    except OSError:  # it exists: the same name and content hash, maybe in use; keep it
        if not (final / "spec.json").is_file():
            raise
        shutil.rmtree(work)
    cv: dict[str, Any] = dict(spec.metrics.get("cv") or {})  # type: ignore[call-overload]
    pooled = cv.pop("pooled", {}) or {}
    cv |= {k: pooled.get(k) for k in ("labels", "confusion_matrix", "accuracy", "macro_f1")}
    return {
        "kind": "result",
        "artifact": str(final),
        "name": spec.name,
        "version": spec.version,
        "score": spec.metrics.get("score"),
        "cv": cv,
        "labels": spec.labels,
        "n_windows": spec.training.get("n_windows"),
    }


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (a diverged loss) as None: JSON has neither."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def main() -> int:
    """Read the job, train, report; exit 0 on a result, 1 on an error."""
    events = _events_stream()

    def emit(event: dict[str, Any]) -> None:
        events.write(json.dumps(_finite(event), default=str, allow_nan=False) + "\n")

    try:
        job = json.loads(sys.stdin.read())
        _threads(int(job.get("threads", 0)))
        if job.get("nice"):
            os.nice(int(job["nice"]))
        emit(run(job, emit))
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure is one event, then the exit status
        from training.errors import DataError

        if "job" in locals() and isinstance(job, dict) and "models_dir" in job:
            shutil.rmtree(partial_dir(Path(job["models_dir"]), str(job["job"])), True)
        kind = "data" if isinstance(exc, DataError) else type(exc).__name__
        emit({"kind": "error", "error": f"{kind}: {exc}"[:2000]})
        return 1
    finally:
        events.flush()


if __name__ == "__main__":
    raise SystemExit(main())
