"""Every dashboard page under Streamlit's AppTest, fed by real messages on a real broker."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import publish as pub
from tests.support.dashboard import app, connection_of, metrics, texts, wait_until

pytestmark = pytest.mark.broker


def test_live_page_shows_devices_predictions_and_accuracy(dashboard_settings, mqtt_client):
    at = app()
    assert not at.exception
    conn = connection_of(dashboard_settings)
    pub.publish_device(mqtt_client, "wrist-1", label="Squat")
    pub.publish_device(mqtt_client, "ankle-2", label="Pushup")
    wait_until(
        lambda: all(
            (v := conn.store.device(d)) is not None and len(v.predictions) == 3
            for d in ("wrist-1", "ankle-2")
        )
    )
    at.run()
    assert not at.exception
    shown = texts(at)
    assert "wrist-1" in shown and "ankle-2" in shown
    values = [m.value for m in at.metric]
    assert "Squat" in values and "Pushup" in values
    assert "80%" in values  # confidence
    assert "12.5 ms" in values  # classifier latency
    assert values.count("100%") == 2  # live accuracy: every window matches its truth
    assert "Truth: **Squat**" in shown
    assert len(at.get("vega_lite_chart")) >= 4  # IMU plots, bars, timeline


def test_live_page_waits_when_no_device(dashboard_settings, monkeypatch):
    # A root of its own: other tests leave retained device messages on the shared broker.
    monkeypatch.setenv("HAR_TOPIC_ROOT", "har-empty")
    at = app()
    assert not at.exception
    assert "Waiting for devices" in texts(at)


def test_model_page_shows_spec_metrics_confusion_and_classifier(dashboard_settings, mqtt_client):
    at = app("models")
    conn = connection_of(dashboard_settings)
    pub.publish(mqtt_client, "har/model/spec", pub.model_spec().to_payload(), retain=True)
    status = pub.service_status("classifier")
    pub.publish(mqtt_client, "har/service/classifier/status", status.to_payload(), retain=True)
    wait_until(lambda: conn.store.snapshot()["model_spec"] is not None)
    wait_until(lambda: "classifier" in conn.store.snapshot()["services"])
    at.run()
    assert not at.exception
    shown = texts(at)
    assert "bilstm-test" in shown and "`Pushup`" in shown and "`Jumping`" in shown
    assert metrics(at)["Window"] == "20 samples" and metrics(at)["Rate"] == "50 Hz"
    assert metrics(at)["accuracy"] == "0.912"
    assert "Confusion matrix" in shown
    table = at.dataframe[0].value
    assert table.loc["Squat", "Squat"] == 19 and table.loc["Squat", "Pushup"] == 1
    assert "online" in shown and "classifier-test-1" in shown
    assert any("onnx" in str(j.value) for j in at.json)
    pub.publish(mqtt_client, "har/model/spec", b"", retain=True)  # leave no retained spec


def test_system_page_shows_services_and_broker(dashboard_settings, mqtt_client):
    at = app("system")
    conn = connection_of(dashboard_settings)
    for name, state in (("windower", "online"), ("recorder", "offline")):
        payload = pub.service_status(name, state, rejected=7).to_payload()
        pub.publish(mqtt_client, f"har/service/{name}/status", payload, retain=True)
    wait_until(lambda: {"windower", "recorder"} <= set(conn.store.snapshot()["services"]))
    at.run()
    assert not at.exception
    assert metrics(at)["Connection"] == "connected"
    assert metrics(at)["Broker"] == f"127.0.0.1:{dashboard_settings.mqtt_port}"
    services = at.dataframe[0].value.set_index("service")
    assert services.loc["windower", "state"] == "online"
    assert services.loc["recorder", "state"] == "offline"
    assert services.loc["windower", "in"] == 4321 and services.loc["windower", "rejected"] == 7
    labels = [e.label for e in at.expander]
    assert any("windower — online" in label for label in labels)
    assert any("recorder — offline" in label for label in labels)
    for name in ("windower", "recorder"):
        pub.publish(mqtt_client, f"har/service/{name}/status", b"", retain=True)


def write_session(base, session: str, device: str, label: str, rows: int) -> None:  # type: ignore[no-untyped-def]
    folder = base / "recordings" / "date=2026-11-24" / f"device={device}"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "time": [1_700_000_000 + i / 50 for i in range(rows)],
            "acc_x": [float(i % 7) for i in range(rows)],
            "acc_y": [0.5] * rows,
            "label": [label] * rows,
        }
    )
    pq.write_table(table, folder / f"{session}.parquet")
    manifest = {
        "session": session,
        "device": device,
        "label": label,
        "subject": "s01",
        "rows": rows,
        "started_at": 1_700_000_000,
        "stopped_at": 1_700_000_000 + rows / 50,
    }
    (folder / f"{session}.json").write_text(json.dumps(manifest))


def test_sessions_page_lists_counts_previews_and_downloads(dashboard_settings):
    base = dashboard_settings.data_dir
    write_session(base, "squat-001", "wrist-1", "Squat", 500)
    write_session(base, "squat-002", "wrist-1", "Squat", 250)
    write_session(base, "pushup-001", "ankle-2", "Pushup", 100)
    at = app("sessions")
    assert not at.exception
    assert metrics(at)["Sessions"] == "3" and metrics(at)["Rows"] == "850"
    counts = at.dataframe[0].value.set_index("label")
    assert counts.loc["Squat", "sessions"] == 2 and counts.loc["Squat", "rows"] == 750
    assert counts.loc["Squat", "seconds"] == pytest.approx(15.0)
    sessions = at.dataframe[1].value
    assert set(sessions["session"]) == {"squat-001", "squat-002", "pushup-001"}
    at.selectbox(key="sessions_pick").set_value("pushup-001").run()
    assert not at.exception
    assert "ankle-2 · Pushup · subject s01 · 100 rows · 2.0 s" in texts(at)
    assert len(at.get("vega_lite_chart")) == 1
    assert len(at.get("download_button")) == 1


def test_sessions_page_without_data(dashboard_settings):
    at = app("sessions")
    assert not at.exception
    assert "No recorded sessions yet" in texts(at)
