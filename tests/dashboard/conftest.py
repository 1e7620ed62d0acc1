"""Fixtures: the dashboard's settings pointed at the private broker, AppTest helpers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from imu_har.ops.broker import MosquittoBroker
from services.dashboard import ui
from services.dashboard.app import DashboardSettings
from services.dashboard.connection import Connection

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "services" / "dashboard" / "streamlit_app.py"


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


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def app(page: str | None = None) -> AppTest:
    """A fresh AppTest of the dashboard, run once (on ``page`` if given)."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    return at


def connection_of(settings: DashboardSettings) -> Connection:
    """The connection the pages created (the same cached object), once subscribed."""
    conn = ui._connection(settings.model_dump_json())
    wait_until(conn.subscribed.is_set)
    return conn


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
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
