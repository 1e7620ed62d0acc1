"""``har trainer``: train models from recorded sessions, as a service.

Jobs come as commands on ``<root>/trainer/cmd`` (docs/training.md, "The
trainer service"); each runs in a child process (:mod:`services.trainer.worker`,
the only part that loads TensorFlow) and writes its artifact atomically into
the models directory. Progress and results are retained on
``<root>/trainer/status``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.skeleton import StartupError, serve
from services.trainer.handler import TrainerHandler
from services.trainer.runner import remove_stale_partials
from services.trainer.settings import TrainerSettings

logger = logging.getLogger(__name__)


def build(settings: TrainerSettings) -> tuple[ServiceRuntime, TrainerHandler]:
    """The runtime and handler for ``settings`` (main and the tests both use this)."""
    try:
        settings.models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the models directory {settings.models_dir}: {exc}"
        ) from exc
    stale = remove_stale_partials(settings.models_dir)
    if stale:
        logger.warning("removed partial artifacts of an interrupted run: %s", stale)
    runtime = ServiceRuntime("trainer", settings)
    return runtime, TrainerHandler(settings, runtime)


def main(argv: Sequence[str] | None = None) -> int:
    """``har trainer``: training jobs by command."""
    description = "Train models from recorded sessions, one job at a time, by MQTT command."
    return serve("trainer", TrainerSettings, description, build, argv)
