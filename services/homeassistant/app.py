"""``har homeassistant``: each wearable as a Home Assistant device, by MQTT discovery.

The skeleton of every service (docs/runtime.md): ``settings.py`` declares the
settings, ``core.py`` is the pure core, ``handler.py`` the runtime handler, and
this module builds them. docs/homeassistant.md describes the entities.
"""

from __future__ import annotations

from collections.abc import Sequence

from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.skeleton import serve
from services.homeassistant.core import SERVICE
from services.homeassistant.handler import HomeAssistantHandler
from services.homeassistant.settings import HomeAssistantSettings

__all__ = ["HomeAssistantHandler", "HomeAssistantSettings", "build", "main"]


def build(settings: HomeAssistantSettings) -> tuple[ServiceRuntime, HomeAssistantHandler]:
    """The runtime and handler for ``settings`` (main and the tests both use this)."""
    runtime = ServiceRuntime(SERVICE, settings, max_batch=settings.max_batch)
    return runtime, HomeAssistantHandler(settings, runtime)


def main(argv: Sequence[str] | None = None) -> int:
    """``har homeassistant``: wearables, their exercise, repetitions and link in Home Assistant."""
    return serve(
        SERVICE,
        HomeAssistantSettings,
        "Show each wearable in Home Assistant (MQTT discovery): exercise, repetitions, link.",
        build,
        argv,
    )
