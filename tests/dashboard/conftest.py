"""Fixtures: the dashboard's settings pointed at the private broker, a login file, the recorder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imu_har.ops.broker import MosquittoBroker
from services.dashboard import login, ui
from services.dashboard.settings import DashboardSettings
from tests.support.dashboard import REPO, USERS, write_auth_file
from tests.support.processes import stop_process


@pytest.fixture()
def dashboard_settings(
    broker: MosquittoBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DashboardSettings]:
    """HAR_* environment for the page scripts; the cached connection is closed afterwards."""
    monkeypatch.delenv("HAR_DASHBOARD_SETTINGS", raising=False)
    monkeypatch.setenv("HAR_MQTT_HOST", broker.host)
    monkeypatch.setenv("HAR_MQTT_PORT", str(broker.port))
    monkeypatch.setenv("HAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HAR_REFRESH", "0.5")
    yield DashboardSettings(
        mqtt_host=broker.host, mqtt_port=broker.port, data_dir=tmp_path / "data", refresh=0.5
    )
    ui._connection.clear()  # releases (closes) every cached connection


@pytest.fixture()
def auth_file(
    dashboard_settings: DashboardSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A login file with the two ``USERS``, given to the pages as ``HAR_AUTH_FILE``."""
    path = write_auth_file(tmp_path / "users.auth", USERS)
    monkeypatch.setenv("HAR_AUTH_FILE", str(path))
    login.throttle.clear()  # failed attempts of earlier tests are forgotten
    yield path
    login.throttle.clear()


@pytest.fixture()
def recorder(broker: MosquittoBroker, dashboard_settings: DashboardSettings) -> Iterator[Path]:
    """The real recorder service as a subprocess writing to the dashboard's data dir."""
    log = dashboard_settings.data_dir.parent / "recorder.log"
    dashboard_settings.data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.recorder",
                f"--data-dir={dashboard_settings.data_dir}",
                f"--mqtt-host={broker.host}",
                f"--mqtt-port={broker.port}",
                "--status-interval=0.5",
                "--no-fsync",
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        stop_process(process)
