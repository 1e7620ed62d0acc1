"""Model artifacts for the Models page: listed, described, scored (pure: no Streamlit, no MQTT).

An artifact is a directory with ``spec.json`` (:class:`ModelSpec`). The page
lists them from the trainer's ``list`` reply when the trainer is online (the
dashboard then needs no models volume), else from the models directory
(``--models-dir``). Scores shown are the *grouped* validation ones only (the
trainer's cross-validation by subject or session, or a held-out evaluation):
training accuracy says nothing about new people and is never shown.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imu_har.protocol.model_spec import SPEC_FILE, ModelSpec

logger = logging.getLogger(__name__)

MAX_ARTIFACTS = 200  # newest first; a directory of thousands is listed in part
MAX_SPEC_BYTES = 4 << 20  # a spec with a large confusion matrix is ~100 KiB
MAX_SHOWN_KEYS = 16  # score columns of one artifact
# Metrics that are not a grouped validation score (training accuracy overfits by design).
NOT_SCORES = frozenset({"train_accuracy", "export_max_abs_diff", "final_loss"})


@dataclass(frozen=True)
class Artifact:
    """One model artifact as the page shows it."""

    path: str  # as the classifier is to be told (its --model-root must hold it)
    name: str
    version: str = ""
    created_at: str = ""
    labels: tuple[str, ...] = ()
    architecture: str = ""
    geometry: str = ""  # "25 @ 12.5 Hz, hop 5"
    method: str = ""  # how the scores were measured ("grouped validation by subject, 4 folds")
    trained_on: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    confusion: tuple[list[str], list[list[float]]] | None = None
    error: str | None = None

    def row(self) -> dict[str, Any]:
        """One table row (what it was trained on only when known)."""
        seen: dict[str, Any] = {
            k: self.trained_on[k] for k in ("windows", "sessions") if k in self.trained_on
        }
        return {
            "name": self.name,
            "created": self.created_at,
            "version": self.version[:12],
            "labels": ", ".join(self.labels),
            **seen,
            **{k: round(v, 3) for k, v in self.scores.items()},
            "path": self.path,
            "error": self.error or "",
        }


def from_spec(path: str, spec: ModelSpec) -> Artifact:
    """Describe the artifact at ``path`` from its spec."""
    return Artifact(
        path=path,
        name=spec.name,
        version=spec.version,
        created_at=spec.created_at,
        labels=tuple(spec.labels),
        architecture=spec.architecture,
        geometry=f"{spec.window} @ {spec.rate:g} Hz, hop {spec.hop}",
        trained_on=trained_on(spec.training),
        scores=grouped_scores(spec.metrics),
        method=_method(spec.metrics),
        confusion=confusion(spec.metrics, list(spec.labels)),
    )


def from_list_item(item: dict[str, Any]) -> Artifact | None:
    """An artifact of the trainer's ``list`` reply (path, name, labels, its ``score``)."""
    path, name = item.get("path"), item.get("name")
    if not isinstance(path, str) or not path or not isinstance(name, str):
        return None
    labels = item.get("labels")
    score = item.get("score")
    return Artifact(
        path=path,
        name=name,
        version=str(item.get("version") or ""),
        created_at=str(item.get("created_at") or ""),
        labels=tuple(str(x) for x in labels) if isinstance(labels, list) else (),
        scores=grouped_scores({"score": score}) if isinstance(score, dict) else {},
        method=_method({"score": score}),
    )


def read_artifact(directory: Path) -> Artifact:
    """The artifact in ``directory``; a broken one is listed with its error."""
    spec_path = directory / SPEC_FILE
    try:
        if spec_path.stat().st_size > MAX_SPEC_BYTES:
            raise ValueError(f"{SPEC_FILE} is over {MAX_SPEC_BYTES} bytes")
        spec = ModelSpec.model_validate_json(spec_path.read_bytes())
    except (OSError, ValueError, ValidationError) as exc:
        return Artifact(path=str(directory), name=directory.name, error=str(exc)[:300])
    return from_spec(str(directory), spec)


def list_directory(models_dir: Path) -> list[Artifact]:
    """Artifacts directly under ``models_dir``, newest first (hidden ones are partial saves)."""
    try:
        candidates = [
            p
            for p in Path(models_dir).iterdir()
            if not p.name.startswith(".") and p.is_dir() and (p / SPEC_FILE).is_file()
        ]
    except OSError:
        return []
    newest = sorted(candidates, key=_mtime, reverse=True)[:MAX_ARTIFACTS]
    return [read_artifact(p.resolve()) for p in newest]


def _mtime(path: Path) -> float:
    try:
        return (path / SPEC_FILE).stat().st_mtime
    except OSError:
        return 0.0


def trained_on(training: dict[str, Any]) -> dict[str, Any]:
    """What the model saw: windows, recordings or sessions, subjects, windows per label."""
    out: dict[str, Any] = {}
    if _number(training.get("n_windows")) is not None:
        out["windows"] = int(training["n_windows"])
    for key, name in (("sessions", "sessions"), ("groups", "sessions"), ("subjects", "subjects")):
        value = training.get(key)
        if isinstance(value, list) and name not in out:
            out[name] = len(value)
        elif (count := _number(value)) is not None and name not in out:
            out[name] = int(count)
    counts = training.get("label_counts")
    if isinstance(counts, dict):
        out["per_label"] = {str(k): v for k, v in counts.items() if _number(v) is not None}
    return out


def grouped_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """The grouped-validation scores of a spec's metrics (never training accuracy).

    ``score`` (the trainer's headline: the grouped validation's mean), else
    ``cv`` (``har train --cv``): mean and worst fold accuracy, mean macro-F1;
    then any other block with ``accuracy`` (a held-out evaluation, such as the
    demo model's unseen simulated wearers).
    """
    scores: dict[str, float] = {}
    score, cv = metrics.get("score"), metrics.get("cv")
    if isinstance(score, dict):
        pairs = [("accuracy", "accuracy"), ("min_accuracy", "worst fold"), ("macro_f1", "macro-F1")]
        source: dict[str, Any] = score
    elif isinstance(cv, dict):
        pairs = [("mean_accuracy", "accuracy"), ("min_accuracy", "worst fold")]
        pairs.append(("mean_macro_f1", "macro-F1"))
        source = cv
    else:
        pairs, source = [], {}
    for key, name in pairs:
        if (value := _number(source.get(key))) is not None:
            scores[name] = value
    for key, block in metrics.items():
        if isinstance(score, dict):  # the headline: other blocks are what it summarizes
            break
        if key in NOT_SCORES or key == "cv" or not isinstance(block, dict):
            continue
        for part in ("accuracy", "macro_f1"):
            if (value := _number(block.get(part))) is not None:
                scores[f"{key} {part}"[:60]] = value
        if len(scores) >= MAX_SHOWN_KEYS:
            break
    return dict(list(scores.items())[:MAX_SHOWN_KEYS])


def _method(metrics: dict[str, Any]) -> str:
    """How the scores were measured, in words."""
    score, cv = metrics.get("score"), metrics.get("cv")
    if isinstance(score, dict) and isinstance(score.get("method"), str):
        return str(score["method"])[:200]
    if isinstance(cv, dict):
        grouping = cv.get("grouping", "session")
        return f"grouped validation by {str(grouping)[:32]}, {cv.get('k', '?')} folds"[:200]
    held_out = [k for k, b in metrics.items() if isinstance(b, dict) and "accuracy" in b]
    held_out = [k for k in held_out if k not in NOT_SCORES]
    return f"held out: {', '.join(held_out)}"[:200] if held_out else ""


Confusion = tuple[list[str], list[list[float]]]


def confusion(metrics: dict[str, Any], labels: list[str]) -> Confusion | None:
    """The grouped-validation confusion matrix (rows true, columns predicted), if any.

    Prefers the pooled cross-validation matrix, then a held-out block's; a bare
    top-level ``confusion_matrix`` (with optional ``labels``) last.
    """
    cv = metrics.get("cv")
    blocks = [cv.get("pooled")] if isinstance(cv, dict) else []
    blocks += [b for k, b in metrics.items() if k not in NOT_SCORES and k not in ("cv", "score")]
    blocks.append(metrics)
    for block in blocks:
        if isinstance(block, dict) and isinstance(block.get("confusion_matrix"), list):
            names = block.get("labels", labels)
            if isinstance(names, list):
                return [str(n) for n in names], block["confusion_matrix"]
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def live_path(details: dict[str, Any]) -> str | None:
    """The artifact path the classifier serves, from its status ``details.model.path``."""
    model = details.get("model")
    path = model.get("path") if isinstance(model, dict) else None
    return path if isinstance(path, str) and path else None
