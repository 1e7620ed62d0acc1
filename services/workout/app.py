"""``har workout``: raw frames and predictions in; repetitions, sets and workout state out.

The shape every service has (docs/runtime.md, "The service skeleton"):
``settings.py`` declares the settings, ``core.py`` is the pure core,
``handler.py`` the runtime handler, and this module builds them.
"""

from __future__ import annotations

from collections.abc import Sequence

from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.skeleton import serve
from services.workout.handler import WorkoutHandler
from services.workout.settings import WorkoutSettings

__all__ = ["WorkoutHandler", "WorkoutSettings", "build", "main"]


def build(settings: WorkoutSettings) -> tuple[ServiceRuntime, WorkoutHandler]:
    """The runtime and handler for ``settings`` (main and the tests both use this)."""
    runtime = ServiceRuntime(
        "workout", settings, max_batch=settings.max_batch, batch_wait=settings.batch_wait
    )
    return runtime, WorkoutHandler(settings, runtime)


def main(argv: Sequence[str] | None = None) -> int:
    """``har workout``: count sets and repetitions live."""
    return serve(
        "workout", WorkoutSettings, "Count sets and repetitions and judge their form.", build, argv
    )
