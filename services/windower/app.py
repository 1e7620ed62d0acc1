"""``har windower``: subscribe to raw frames, publish sliding windows.

The template every service copies (docs/runtime.md, "The service skeleton"):
``settings.py`` declares the settings, ``core.py`` is the pure core,
``handler.py`` the runtime handler, and this module builds them.
"""

from __future__ import annotations

from collections.abc import Sequence

from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.skeleton import serve
from services.windower.handler import WindowerHandler
from services.windower.settings import WindowerSettings

__all__ = ["WindowerHandler", "WindowerSettings", "build", "main"]


def build(settings: WindowerSettings) -> tuple[ServiceRuntime, WindowerHandler]:
    """The runtime and handler for ``settings`` (main and the tests both use this)."""
    runtime = ServiceRuntime("windower", settings, max_batch=settings.max_batch)
    return runtime, WindowerHandler(settings, runtime)


def main(argv: Sequence[str] | None = None) -> int:
    """``har windower``: raw frames -> sliding windows."""
    return serve(
        "windower", WindowerSettings, "Cut raw IMU frames into sliding windows.", build, argv
    )
