"""``har classifier``: windows in, predictions out, one model artifact at a time.

Subscribes to ``<root>/+/window`` (optionally through the MQTT v5 shared
subscription ``$share/<group>/...`` so replicas split the stream), checks each
window against the model spec, classifies micro-batches with ONNX Runtime or
LiteRT (TensorFlow only when chosen or allowed) and publishes one Prediction
per window on ``<root>/<device>/prediction``. Keeps the model spec retained on
``<root>/model/spec`` so the windower cuts the model's windows. Reloads a model
on command (``<root>/classifier/cmd``) or when a watched directory gets a new
artifact, without pausing classification. See docs/classifier.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from imu_har.protocol.errors import PayloadError
from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.skeleton import StartupError, serve
from services.classifier.handler import ClassifierHandler
from services.classifier.model import LoadedModel, load_model
from services.classifier.reload import newest_artifact
from services.classifier.settings import ClassifierSettings

__all__ = ["ClassifierSettings", "build", "initial_model", "main"]
logger = logging.getLogger(__name__)


def initial_model(settings: ClassifierSettings) -> LoadedModel:
    """The model to start with: ``--model``, else the newest in ``--watch-dir``.

    Raises :class:`StartupError` when there is none or it does not load.
    """
    path = settings.model
    if path is None and settings.watch_dir is not None:
        key = newest_artifact(settings.watch_dir)
        path = Path(key[0]) if key else None
    if path is None:
        raise StartupError("no model: give --model or a --watch-dir with one")
    try:
        model = load_model(path, settings)
    except PayloadError as exc:
        raise StartupError(str(exc)) from exc
    logger.info("serving %r with %s from %r", model.key, model.backend.name, str(model.path))
    return model


def build(settings: ClassifierSettings) -> tuple[ServiceRuntime, ClassifierHandler]:
    """The runtime and handler for ``settings``, serving the initial model (main and tests)."""
    model = initial_model(settings)
    runtime = ServiceRuntime(
        "classifier", settings, max_batch=settings.max_batch, batch_wait=settings.batch_wait
    )
    return runtime, ClassifierHandler(settings, runtime, model)


def main(argv: Sequence[str] | None = None) -> int:
    """``har classifier``: windows -> predictions."""
    return serve(
        "classifier",
        ClassifierSettings,
        "Classify windows with a model artifact and publish predictions.",
        build,
        argv,
    )
