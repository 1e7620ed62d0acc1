"""``har dashboard``: check the settings, then launch Streamlit (headless) on the page script.

The dashboard is a Streamlit app, not a runtime service: ``main`` validates the
settings (flags, ``HAR_*`` environment, ``--config``; see ``settings.py``),
refuses to start when it would serve strangers without a login, and replaces
itself with ``streamlit run`` on ``streamlit_app.py``, which reads the settings
back from ``HAR_DASHBOARD_SETTINGS``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from imu_har.runtime.settings import load_settings
from imu_har.runtime.skeleton import StartupError
from services.dashboard.auth import AuthFileError, load_users
from services.dashboard.settings import SETTINGS_ENV, DashboardSettings

PAGE_SCRIPT = Path(__file__).with_name("streamlit_app.py")


def check_access(settings: DashboardSettings) -> None:
    """Raise :class:`StartupError` unless the settings protect the dashboard.

    With ``--auth-file`` the file must hold valid users. Without one the
    dashboard starts only on a loopback address, or with ``--allow-anonymous``:
    anyone who reaches it may start recordings and download every session.
    """
    if settings.auth_file is not None:
        try:
            load_users(settings.auth_file)
        except AuthFileError as exc:
            raise StartupError(str(exc)) from None
        return
    if not settings.loopback and not settings.allow_anonymous:
        raise StartupError(
            f"refusing to serve {settings.address!r} without a login: anyone there could "
            "start recordings and download every session. Give --auth-file "
            "(python -m services.dashboard.auth USER makes a line), serve 127.0.0.1, "
            "or pass --allow-anonymous"
        )


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
    try:
        check_access(settings)
    except StartupError as exc:
        print(f"har dashboard: {exc}", file=sys.stderr)
        return 2
    host = "127.0.0.1" if settings.address in {"0.0.0.0", "::"} else settings.address
    print(f"imu-har dashboard: http://{host}:{settings.port}", flush=True)
    if settings.auth_file is None:
        print("imu-har dashboard: no login (--auth-file to require one)", flush=True)
    env = dict(os.environ)
    env[SETTINGS_ENV] = settings.model_dump_json()
    command = streamlit_command(settings)
    os.execve(command[0], command, env)  # signals now reach Streamlit directly
    return 0  # pragma: no cover - execve does not return
