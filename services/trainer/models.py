"""The artifacts in the models directory, for the ``list`` reply (spec fields and scores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.model_spec import SPEC_FILE, load_spec

SHOWN = ("accuracy", "macro_f1", "min_accuracy", "method", "n_windows")


def list_artifacts(models_dir: Path, limit: int) -> list[dict[str, Any]]:
    """Complete artifacts (a valid ``spec.json``), newest first, at most ``limit``.

    ``score`` is the held-out one (grouped validation, or the demo model's unseen
    simulated wearers), never the training accuracy; None when the model has none.
    """
    if not models_dir.is_dir():
        return []
    dirs = [
        p
        for p in models_dir.iterdir()
        if not p.name.startswith(".") and not p.is_symlink() and (p / SPEC_FILE).is_file()
    ]
    dirs.sort(key=lambda p: (p / SPEC_FILE).stat().st_mtime, reverse=True)
    out = []
    for path in dirs[:limit]:
        try:
            spec = load_spec(path)
        except PayloadError:
            continue
        score = spec.metrics.get("score")
        out.append(
            {
                "path": str(path),
                "name": spec.name,
                "version": spec.version,
                "created_at": spec.created_at,
                "labels": list(spec.labels),
                "channels": list(spec.channels),
                "rate": spec.rate,
                "score": {k: score.get(k) for k in SHOWN} if isinstance(score, dict) else None,
            }
        )
    return out
