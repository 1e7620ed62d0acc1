"""Broker down (banner, automatic reconnection) and malformed messages (counted, no error)."""

from __future__ import annotations

import socket
import threading

import pytest

from imu_har.ops.broker import MosquittoBroker, free_port
from imu_har.runtime.client import connect
from services.dashboard import ui
from tests.support import publish as pub
from tests.support.dashboard import app, connection_of, metrics, texts, wait_until

pytestmark = pytest.mark.broker
PAGES = ("live", "record", "sessions", "train", "models", "system")


def test_banner_while_broker_restarts_then_reconnects(broker, dashboard_settings):
    at = app("system")
    conn = connection_of(dashboard_settings)
    at.run()  # the first run may have come before the connection did
    assert "Broker unreachable" not in texts(at)
    assert metrics(at)["Connection"] == "connected"
    restart = threading.Thread(target=broker.restart, kwargs={"down_seconds": 3.0})
    restart.start()
    try:
        wait_until(lambda: not conn.state().connected)
        for page in PAGES:
            at.switch_page(f"views/{page}.py").run()
            assert not at.exception, page
            if page != "sessions":  # the sessions page reads files, not the broker
                assert "Broker unreachable" in texts(at), page
        at.switch_page("views/system.py").run()
        assert metrics(at)["Connection"] == "disconnected"
    finally:
        restart.join()
    wait_until(conn.subscribed.is_set, timeout=30)  # paho reconnected and resubscribed
    payload = pub.service_status("after-restart").to_payload()
    client = connect(broker.host, broker.port)  # the old one lost the broker too
    pub.publish(client, "har/service/after-restart/status", payload, retain=True)
    wait_until(lambda: "after-restart" in conn.store.snapshot()["services"])
    at.run()
    assert not at.exception
    assert "Broker unreachable" not in texts(at)
    assert metrics(at)["Connection"] == "connected"
    assert "after-restart" in set(at.dataframe[0].value["service"])
    assert conn.state().disconnects == 1
    pub.publish(client, "har/service/after-restart/status", b"", retain=True)
    client.loop_stop()
    client.disconnect()


def test_dashboard_started_before_the_broker_connects_when_it_comes(monkeypatch, tmp_path):
    port = free_port()
    late = MosquittoBroker(port=port)
    monkeypatch.setenv("HAR_MQTT_PORT", str(port))
    monkeypatch.setenv("HAR_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HAR_DASHBOARD_SETTINGS", raising=False)
    try:
        at = app("live")
        assert not at.exception
        conn = ui.connection(ui.page_settings())
        wait_until(lambda: conn.state().last_error is not None)  # the first attempt failed
        at.run()
        assert "Broker unreachable" in texts(at)
        late.start()
        wait_until(conn.subscribed.is_set, timeout=30)
        at.run()
        assert not at.exception
        assert "Broker unreachable" not in texts(at)
    finally:
        ui._connection.clear()
        late.cleanup()


def test_connecting_note_while_the_first_attempt_is_pending(monkeypatch, tmp_path):
    """A broker that accepts TCP but never answers CONNECT: 'connecting', not an alarm."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    silent.settimeout(10)
    monkeypatch.setenv("HAR_MQTT_PORT", str(silent.getsockname()[1]))
    monkeypatch.setenv("HAR_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HAR_DASHBOARD_SETTINGS", raising=False)
    try:
        at = app("live")
        conn = ui.connection(ui.page_settings())
        peer, _ = silent.accept()  # paho's TCP connect arrived; it now waits for a CONNACK
        at.run()
        assert not at.exception
        assert conn.state().last_error is None and not conn.state().connected
        assert "Connecting to the broker" in texts(at)
        assert "Broker unreachable" not in texts(at)
        peer.close()
    finally:
        ui._connection.clear()
        silent.close()


def test_malformed_messages_are_counted_and_pages_never_error(dashboard_settings, mqtt_client):
    at = app("system")
    conn = connection_of(dashboard_settings)
    junk = [
        ("har/wrist-9/imu", b"\x00garbage"),
        ("har/wrist-9/prediction", b"{}"),
        ("har/wrist-9/truth", b"\xff\xfe"),
        ("har/wrist-9/status", b'{"device": "wrist-9", "state": "dancing"}'),
        ("har/service/evil/status", b"null"),
        ("har/model/spec", b'{"labels": "nope"}'),
        ("har/recorder/status", b"not json"),
        ("har/recorder/reply", b"[]"),
    ]
    pub.publish(mqtt_client, "har/x/y/z/too/deep", b"1")  # unknown, not malformed
    for topic, payload in junk:
        pub.publish(mqtt_client, topic, payload)
    pub.publish_device(mqtt_client, "wrist-9", frames=3)  # good data still flows
    wait_until(lambda: sum(conn.store.snapshot()["malformed"].values()) >= len(junk))
    wait_until(lambda: conn.store.snapshot()["ignored"].get("deep") == 1)
    wait_until(lambda: (v := conn.store.device("wrist-9")) is not None and len(v.predictions) == 3)
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, page
        assert not at.error, page
    at.switch_page("views/system.py").run()
    assert metrics(at)["Malformed ignored"] == str(len(junk))
    reasons = at.dataframe[0].value.set_index("reason")["count"].to_dict()
    assert reasons["bad_json"] >= 6 and sum(reasons.values()) == len(junk)
    assert "Other traffic not shown: deep 1" in texts(at)
    at.switch_page("views/live.py").run()
    assert "Squat" in [m.value for m in at.metric]
    pub.publish(mqtt_client, "har/wrist-9/truth", b"", retain=True)
