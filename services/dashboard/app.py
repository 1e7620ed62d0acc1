"""``har dashboard``: launch the Streamlit dashboard (headless) on its page script.

The settings are validated here (flags, ``HAR_*`` environment, ``--config``),
then handed to the Streamlit process as JSON in ``HAR_DASHBOARD_SETTINGS``;
the page script reads them back with :func:`page_settings`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import Field, ValidationError

from imu_har.runtime.settings import MqttSettings, load_settings

SETTINGS_ENV = "HAR_DASHBOARD_SETTINGS"
PAGE_SCRIPT = Path(__file__).with_name("streamlit_app.py")


class DashboardSettings(MqttSettings):
    """Settings of ``har dashboard``."""

    port: int = Field(default=8501, ge=1, le=65535, description="HTTP port of the dashboard")
    address: str = Field(
        default="127.0.0.1", description="Address to serve on (0.0.0.0 for the whole network)"
    )
    data_dir: Path = Field(default=Path("data"), description="Recorder data directory")
    refresh: float = Field(default=1.0, ge=0.2, le=60, description="Page refresh period (s)")
    history: float = Field(default=10.0, gt=0, le=600, description="Seconds of IMU data plotted")
    max_devices: int = Field(default=32, ge=1, le=1000, description="Most devices tracked at once")
    idle_timeout: float = Field(default=120.0, gt=0, description="Forget a silent device after (s)")


def page_settings(env: Mapping[str, str] | None = None) -> DashboardSettings:
    """The settings inside the Streamlit process: from ``har dashboard``, else ``HAR_*``.

    Raises ``ValueError`` with a readable message when they are invalid.
    """
    env = os.environ if env is None else env
    raw = env.get(SETTINGS_ENV)
    try:
        if raw:
            return DashboardSettings.model_validate_json(raw)
        return load_settings(DashboardSettings, [], prog="har dashboard", env=env)
    except (ValidationError, SystemExit) as exc:
        raise ValueError(f"invalid dashboard settings: {exc}") from None


def streamlit_command(settings: DashboardSettings) -> list[str]:
    """The ``streamlit run`` command line for ``settings`` (headless, no telemetry)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(PAGE_SCRIPT),
        "--server.headless=true",
        f"--server.port={settings.port}",
        f"--server.address={settings.address}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=minimal",
        "--theme.base=light",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """``har dashboard``: the Streamlit dashboard (replaces this process)."""
    settings = load_settings(
        DashboardSettings,
        argv,
        prog="har dashboard",
        description="Serve the live Streamlit dashboard (live, record, sessions, model, system).",
    )
    host = "127.0.0.1" if settings.address in {"0.0.0.0", "::"} else settings.address
    print(f"imu-har dashboard: http://{host}:{settings.port}", flush=True)
    env = dict(os.environ)
    env[SETTINGS_ENV] = settings.model_dump_json()
    command = streamlit_command(settings)
    os.execve(command[0], command, env)  # signals now reach Streamlit directly
    return 0  # pragma: no cover - execve does not return
