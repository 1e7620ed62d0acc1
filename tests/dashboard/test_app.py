"""``har dashboard``: settings and the Streamlit command line (no server started here)."""

from __future__ import annotations

import pytest

from services.dashboard.app import PAGE_SCRIPT, main, streamlit_command
from services.dashboard.settings import SETTINGS_ENV, DashboardSettings, page_settings


def test_command_runs_the_page_script_headless_on_the_port():
    command = streamlit_command(DashboardSettings(port=8642, address="0.0.0.0"))
    assert command[1:5] == ["-m", "streamlit", "run", str(PAGE_SCRIPT)]
    assert PAGE_SCRIPT.is_file()
    assert "--server.headless=true" in command and "--server.port=8642" in command
    assert "--server.address=0.0.0.0" in command
    assert "--browser.gatherUsageStats=false" in command
    assert DashboardSettings().port == 8501 and DashboardSettings().address == "127.0.0.1"


def test_page_settings_from_har_dashboard_or_environment(tmp_path):
    passed = DashboardSettings(mqtt_port=1999, data_dir=tmp_path, refresh=2.0)
    assert page_settings({SETTINGS_ENV: passed.model_dump_json()}) == passed
    from_env = page_settings({"HAR_MQTT_HOST": "broker.local", "HAR_HISTORY": "30"})
    assert from_env.mqtt_host == "broker.local" and from_env.history == 30.0
    with pytest.raises(ValueError, match="invalid dashboard settings"):
        page_settings({"HAR_MQTT_PORT": "not-a-port"})
    with pytest.raises(ValueError, match="invalid dashboard settings"):
        page_settings({SETTINGS_ENV: '{"refresh": 0}'})


def test_bad_flags_exit_with_a_readable_message(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--port", "99999"])
    assert exc.value.code == 2
    assert "--port / HAR_PORT" in capsys.readouterr().err
