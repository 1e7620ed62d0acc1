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

from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.skeleton import serve
from services.classifier.active import ActiveFile
from services.classifier.handler import ClassifierHandler
from services.classifier.settings import ClassifierSettings

__all__ = ["ClassifierSettings", "build", "main"]
logger = logging.getLogger(__name__)


def build(settings: ClassifierSettings) -> tuple[ServiceRuntime, ClassifierHandler]:
    """The runtime and handler for ``settings`` (main and tests).

    Serves the model a reload command activated before this start (the active
    file, :mod:`services.classifier.active`), else ``--model`` or the newest in
    ``--watch-dir``; raises :class:`StartupError` when none loads.
    """
    active = ActiveFile(settings)
    model = active.choose()
    runtime = ServiceRuntime(
        "classifier", settings, max_batch=settings.max_batch, batch_wait=settings.batch_wait
    )
    return runtime, ClassifierHandler(settings, runtime, model, active)


def main(argv: Sequence[str] | None = None) -> int:
    """``har classifier``: windows -> predictions."""
    return serve(
        "classifier",
        ClassifierSettings,
        "Classify windows with a model artifact and publish predictions.",
        build,
        argv,
    )
