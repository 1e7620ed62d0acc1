"""The Record page's counted repetitions, sent to the real recorder (subprocess), real broker."""

from __future__ import annotations

import json

import pytest

from tests.support.dashboard import app, connection_of, texts, wait_until
from tests.support.recorder_mqtt import Requester, announce, publish_frames

pytestmark = pytest.mark.broker
DEV = "ankle-3"


def test_reps_at_the_start_and_after_the_stop_reach_the_manifest(
    dashboard_settings, recorder, mqtt_client
) -> None:
    at = app("record")
    conn = connection_of(dashboard_settings)
    requester = Requester(mqtt_client)
    wait_until(lambda: "recorder" in conn.store.snapshot()["services"], timeout=30)
    announce(mqtt_client, DEV)
    wait_until(lambda: requester.send({"action": "status"})["ok"], timeout=30)
    at.run()
    at.selectbox(key="rec_device").set_value(DEV)
    at.selectbox(key="rec_label").set_value("Squat")
    at.number_input(key="rec_reps").set_value(9)
    at.button(key="rec_start").click().run(timeout=30)
    assert any("start ok" in s.value for s in at.success), texts(at)
    session = at.session_state["recording"]["session"]
    publish_frames(mqtt_client, DEV, range(10))
    at.button(key="rec_stop").click().run(timeout=30)
    assert any("stop ok" in s.value for s in at.success), texts(at)
    path = dashboard_settings.data_dir / "sessions" / f"{session}.json"
    assert json.loads(path.read_text())["reps"] == 9

    at.number_input(key=f"rec_last_reps_{session}").set_value(10).run()
    at.button(key="rec_save_reps").click().run(timeout=30)
    assert not at.exception
    assert any("set_reps ok" in s.value for s in at.success), texts(at)
    assert json.loads(path.read_text())["reps"] == 10
