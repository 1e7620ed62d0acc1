"""The one start-up every service shares: settings, build, run.

Every ``services/<name>/`` has the same files (docs/runtime.md, "The service
skeleton"): ``settings.py`` (typed settings, one default per setting), the pure
core, ``handler.py`` (the runtime :class:`~imu_har.runtime.handler.Handler`),
``app.py`` with ``build(settings) -> (runtime, handler)`` and ``main``, and a
thin ``__main__.py``. ``main`` is one call to :func:`serve`; the tests call the
same ``build``, so a tuning change made there reaches them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from imu_har.runtime.handler import Handler
from imu_har.runtime.priority import lower_priority
from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.settings import MqttSettings, service_settings

S = TypeVar("S", bound=MqttSettings)
Build = Callable[[S], tuple[ServiceRuntime, Handler]]


class StartupError(Exception):
    """Settings that are valid but cannot start (no model there, a file missing...).

    Raised by ``build``; :func:`serve` prints it as one line and exits with 2.
    """


def serve(
    name: str,
    settings_type: type[S],
    description: str,
    build: Callable[[S], tuple[ServiceRuntime, Handler]],
    argv: Sequence[str] | None = None,
) -> int:
    """``har <name>``: read settings (flags, env, file), build, run until stopped.

    The exit code is the runtime's, or the handler's ``exit_status`` when it is
    higher (a handler sets it when it stopped the service because of a failure).
    """
    settings = service_settings(settings_type, name, description, argv)
    lower_priority(settings.cpu_nice)  # before any thread starts: they inherit it
    try:
        runtime, handler = build(settings)
    except StartupError as exc:
        print(f"har {name}: {exc}", file=sys.stderr)
        return 2
    code = runtime.run(handler)
    return max(code, int(getattr(handler, "exit_status", 0) or 0))
