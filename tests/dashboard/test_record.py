"""Record page under AppTest against the real recorder service (subprocess) and broker."""

from __future__ import annotations

import time

import pytest

from imu_har.protocol import topics
from imu_har.protocol.messages import DeviceStatus
from services.dashboard import recording
from tests.support import publish as pub
from tests.support.dashboard import app, connection_of, metrics, texts, wait_until

pytestmark = pytest.mark.broker


def stream(client, device: str, start_seq: int, count: int) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    for i in range(count):
        payload = pub.frame_payload(device, start_seq + i, now - (count - i) * 0.1)
        pub.publish(client, topics.IMU.format("har", device=device), payload)


def test_start_and_stop_a_recording_from_the_page(dashboard_settings, recorder, mqtt_client):
    at = app("record")
    conn = connection_of(dashboard_settings)
    wait_until(
        lambda: (
            (s := conn.store.snapshot()["services"].get("recorder")) is not None
            and s.state == "online"
        ),
        timeout=30,
    )
    # the recorder only records devices it knows: announce it as the gateway does
    status = DeviceStatus(device="wrist-1", state="streaming", source="sim")
    status_topic = topics.DEVICE_STATUS.format("har", device="wrist-1")
    pub.publish(mqtt_client, status_topic, status.to_payload(), retain=True)
    stream(mqtt_client, "wrist-1", 0, 20)
    wait_until(lambda: conn.store.device("wrist-1") is not None)
    time.sleep(0.5)  # let the recorder take the status in before the command
    at.run()
    assert not at.exception
    assert "not online" not in texts(at)
    at.selectbox(key="rec_device").set_value("wrist-1")
    at.selectbox(key="rec_label").set_value("Lunge")
    at.text_input(key="rec_subject").set_value("s07")
    at.button(key="rec_start").click().run()
    assert not at.exception
    assert any("start ok" in s.value for s in at.success), texts(at)
    session = at.session_state["recording"]["session"]
    assert "wrist-1" in session
    stream(mqtt_client, "wrist-1", 20, 40)
    wait_until(
        lambda: (
            (recording.session_rows(conn.store.snapshot()["recorder_status"], session) or 0) >= 200
        ),
        timeout=20,
    )
    at.run()
    shown = metrics(at)
    assert shown["Recording"] == "wrist-1 · Lunge"
    assert int(shown["Rows"].replace(",", "")) >= 200
    assert session in texts(at)
    at.button(key="rec_stop").click().run()
    assert not at.exception
    assert any("stop ok" in s.value for s in at.success), texts(at)
    assert "recording" not in at.session_state
    at.switch_page("views/sessions.py").run()
    assert not at.exception
    sessions = at.dataframe[1].value.set_index("session")
    assert sessions.loc[session, "label"] == "Lunge" and sessions.loc[session, "subject"] == "s07"
    assert sessions.loc[session, "rows"] >= 200


def test_refused_command_and_missing_recorder_are_shown(dashboard_settings, mqtt_client):
    at = app("record")
    conn = connection_of(dashboard_settings)
    stream(mqtt_client, "ghost-1", 0, 1)
    wait_until(lambda: conn.store.device("ghost-1") is not None)
    at.run()
    assert "recorder service is not online" in texts(at)
    at.selectbox(key="rec_device").set_value("ghost-1")
    at.selectbox(key="rec_label").set_value("Squat")
    at.button(key="rec_start").click().run(timeout=30)
    assert not at.exception
    assert "No reply to `start`" in texts(at)
    at.text_input(key="rec_subject").set_value("../etc")  # hostile name: refused before sending
    at.button(key="rec_start").click().run()
    assert not at.exception
    assert "Cannot send: subject" in texts(at)
