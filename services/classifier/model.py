"""Load and check a model artifact before it may serve.

:func:`load_model` reads ``spec.json``, opens a backend and runs a probe batch:
the output must be finite probabilities of the spec's label count that sum to
one. Anything else raises :class:`PayloadError` (reason ``bad_artifact``) with
a message saying what is wrong, so a bad artifact never replaces a good one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.model_spec import ModelSpec, load_spec
from services.classifier.backends import Backend, choose_backend
from services.classifier.settings import ClassifierSettings


@dataclass
class LoadedModel:
    """A checked artifact with its serving backend."""

    path: Path
    spec: ModelSpec
    backend: Backend
    load_ms: float
    timings_us: dict[str, float] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        """``name@version`` (version shortened), for logs and status."""
        return f"{self.spec.name}@{self.spec.version[:12]}"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a float32 batch."""
        return self.backend.predict(batch)

    def describe(self) -> dict[str, Any]:
        """The status/reply view of this model."""
        spec = self.spec
        return {
            "name": spec.name,
            "version": spec.version,
            "path": str(self.path),
            "backend": self.backend.name,
            "labels": list(spec.labels),
            "channels": list(spec.channels),
            "window": spec.window,
            "hop": spec.hop,
            "rate": spec.rate,
            "load_ms": round(self.load_ms, 1),
            "backend_timings_us": {k: round(v, 1) for k, v in self.timings_us.items()},
            "loaded_at": self.loaded_at,
        }


def load_model(model_dir: str | Path, settings: ClassifierSettings) -> LoadedModel:
    """Load, probe and return the artifact in ``model_dir``; :class:`PayloadError` if bad.

    Backend, threads, the batch size ``auto`` compares the backends at and whether
    TensorFlow may serve come from ``settings``.
    """
    started = time.perf_counter()
    path = Path(model_dir).expanduser().resolve()
    if not path.is_dir():
        raise PayloadError("bad_artifact", f"{path} is not a directory")
    spec = load_spec(path)
    chosen, timings = choose_backend(path, spec.window, len(spec.channels), settings)
    probe_model(chosen, spec)
    return LoadedModel(path, spec, chosen, 1000 * (time.perf_counter() - started), timings)


def probe_model(backend: Backend, spec: ModelSpec) -> None:
    """Run two probe windows; raise if the output is not the spec's softmax."""
    rng = np.random.default_rng(0)
    batch = np.stack(
        [
            np.zeros((spec.window, len(spec.channels)), np.float32),
            rng.normal(0, 1, (spec.window, len(spec.channels))).astype(np.float32),
        ]
    )
    try:
        out = np.asarray(backend.predict(batch))
    except Exception as exc:  # a model that cannot run a spec-shaped window is bad
        raise PayloadError(
            "bad_artifact",
            f"{backend.name} model does not accept [2, {spec.window}, {len(spec.channels)}]: {exc}",
        ) from exc
    expected = (2, len(spec.labels))
    if out.shape != expected:
        raise PayloadError(
            "bad_artifact", f"model output shape {out.shape}, spec needs {expected} (labels)"
        )
    if not np.isfinite(out).all() or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        raise PayloadError("bad_artifact", "model output is not finite softmax probabilities")
