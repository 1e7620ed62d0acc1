"""The recorder receives the raw frames of the devices it records, and only those (real broker).

Whether a frame reached the recorder is read from its counters after a command
published later by the same client: the broker delivers in order, so anything
it sent before the command has been counted by the time the reply arrives.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from imu_har.ops.broker import MosquittoBroker
from imu_har.runtime.client import connect
from services.recorder.app import build
from tests.support.recorder import expected_rows, make_frame, read_recordings, recorded_rows
from tests.support.recorder_mqtt import (
    Requester,
    announce,
    handler,
    publish_frames,
    serve,
    settings_for,
    wait_rows,
    wait_until,
)

pytestmark = pytest.mark.broker
DEV, OTHER = "sub-1", "sub-2"


def settled(service: Any) -> bool:
    """No subscription change still waiting for the broker."""
    recorder = handler(service)
    return recorder.imu.unsubscribing == 0 and not recorder.starts.pending


def test_only_recorded_devices_frames_arrive(broker, run_service, mqtt_client, tmp_path: Path):
    service = serve(run_service, settings_for(broker, tmp_path))
    recorder, counters = handler(service), service.runtime.counters
    requester = Requester(mqtt_client)
    announce(mqtt_client, DEV)
    announce(mqtt_client, OTHER)
    assert requester.send({"action": "status"})["ok"]
    assert wait_until(lambda: settled(service))
    before = counters.messages_in
    publish_frames(mqtt_client, DEV, range(100))
    publish_frames(mqtt_client, OTHER, range(100))
    assert requester.send({"action": "status"})["ok"]
    assert counters.messages_in - before <= 3, counters.messages_in - before  # the command
    assert recorder.core.counts["unrecorded_frames"] == 0
    assert recorder.details()["imu_subscriptions"] == []

    started = requester.send({"action": "start", "device": DEV, "label": "Squat"})
    assert started["ok"], started
    assert recorder.details()["imu_subscriptions"] == [DEV]
    publish_frames(mqtt_client, DEV, range(100, 140))
    publish_frames(mqtt_client, OTHER, range(100, 140))
    assert wait_rows(requester, 200)["recording"][0]["rows"] == 200
    assert recorder.core.counts["unrecorded_frames"] == 0  # OTHER's frames would count here

    stopped = requester.send({"action": "stop", "device": DEV})
    assert stopped["ok"] and stopped["data"]["rows"] == 200, stopped
    assert wait_until(lambda: settled(service))
    assert recorder.details()["imu_subscriptions"] == []
    before = counters.messages_in
    publish_frames(mqtt_client, DEV, range(140, 240))
    assert requester.send({"action": "status"})["ok"]
    assert counters.messages_in - before <= 3
    assert recorder.core.counts["unrecorded_frames"] == 0
    assert recorded_rows(read_recordings(tmp_path)) == expected_rows(
        [make_frame(DEV, s)[0] for s in range(100, 140)]
    )
    assert counters.get("handler_error") == 0


class OlderRecorder:
    """The subscriptions of a recorder before per-device frames: every device's frames."""

    def subscriptions(self) -> list[tuple[str, int]]:
        return [("har/recorder/cmd", 1), ("har/+/imu", 1)]

    def handle_batch(self, messages: list[Any]) -> None:
        for message in messages:
            message.ack()

    def tick(self, now: float) -> None:
        pass

    def details(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


def test_wildcard_kept_by_an_older_recorders_session_is_dropped(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    settings = settings_for(broker, tmp_path)  # one client id: the broker keeps its session
    older, _ = build(settings)  # the same durable session, served by the older handler
    run_service(older, OlderRecorder()).stop()  # upgrade: har/+/imu stays subscribed
    service = serve(run_service, settings)
    recorder, counters = handler(service), service.runtime.counters
    assert wait_until(lambda: recorder.imu.counts["unsubscribes"] >= 1 and settled(service))
    requester = Requester(mqtt_client)
    assert requester.send({"action": "status"})["ok"]
    before = counters.messages_in
    publish_frames(mqtt_client, OTHER, range(100))
    assert requester.send({"action": "status"})["ok"]
    assert counters.messages_in - before <= 3, counters.messages_in - before
    assert recorder.core.counts["unrecorded_frames"] == 0


def test_frames_published_right_after_started_are_recorded_once(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    serve(run_service, settings_for(broker, tmp_path))
    requester = Requester(mqtt_client)
    devices = [f"fresh-{i}" for i in range(5)]  # never subscribed before: a real race each
    for device in devices:
        announce(mqtt_client, device)
    for device in devices:
        started = requester.send({"action": "start", "device": device, "label": "Lunge"})
        assert started["ok"], started
        publish_frames(mqtt_client, device, range(20))  # at once, as a client would
        stopped = requester.send({"action": "stop", "device": device})
        assert stopped["ok"] and stopped["data"]["rows"] == 100, stopped
    table = read_recordings(tmp_path)
    for device in devices:
        rows = table.filter(pc.equal(table["device"].cast(pa.string()), device))
        assert recorded_rows(rows) == expected_rows([make_frame(device, s)[0] for s in range(20)])


def test_time_limit_unsubscribes(broker, run_service, mqtt_client, tmp_path: Path) -> None:
    service = serve(run_service, settings_for(broker, tmp_path))
    requester = Requester(mqtt_client)
    announce(mqtt_client, DEV)
    started = requester.send({"action": "start", "device": DEV, "label": "Squat", "max_seconds": 1})
    assert started["ok"], started
    publish_frames(mqtt_client, DEV, range(10))
    assert wait_until(lambda: handler(service).details()["imu_subscriptions"] == [])
    listed = requester.send({"action": "list"})["data"]["sessions"]
    assert [(s["stop_reason"], s["rows"]) for s in listed] == [("time_limit", 50)]


def test_repeated_start_with_same_correlation_is_idempotent(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    serve(run_service, settings_for(broker, tmp_path))
    requester = Requester(mqtt_client)
    announce(mqtt_client, DEV)
    command = {"action": "start", "device": DEV, "label": "Squat", "subject": "al"}
    first = requester.send(command, correlation=b"req-1")
    again = requester.send(command, correlation=b"req-1")  # as the broker redelivers it
    assert first["ok"] and again["ok"], (first, again)
    assert again["data"]["session"] == first["data"]["session"] and again["data"]["repeated"]
    other = requester.send(command)  # a new request for the same device
    assert not other["ok"] and "already recording" in other["error"]
    changed = requester.send(command | {"label": "Lunge"}, correlation=b"req-1")
    assert not changed["ok"] and "already recording" in changed["error"]
    status = requester.send({"action": "status"})["data"]
    assert [s["session"] for s in status["recording"]] == [first["data"]["session"]]


def test_unknown_device_refused_and_first_frame_makes_it_known(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    serve(run_service, settings_for(broker, tmp_path, unknown_device_wait=1.0))
    requester = Requester(mqtt_client)
    refused = requester.send({"action": "start", "device": "nobody-1", "label": "Squat"})
    assert not refused["ok"] and "unknown device 'nobody-1'" in refused["error"], refused
    assert "status" in refused["error"] and not list(tmp_path.rglob("*.seg"))

    # a device that streams but has no status (no gateway): its first frame makes it known
    streamer = connect(broker.host, broker.port)
    stop = _stream_in_background(streamer, "bare-1")
    try:
        reply = requester.send({"action": "start", "device": "bare-1", "label": "Squat"})
    finally:
        stop()
    assert reply["ok"], reply


# Mosquitto's acl_file does not check subscriptions; its dynamic-security plugin does.
DYNSEC = {
    "defaultACLAccess": {
        "publishClientSend": True,
        "publishClientReceive": True,
        "subscribe": True,
        "unsubscribe": True,
    },
    "clients": [],
    "groups": [{"groupname": "anonymous", "roles": [{"rolename": "locked"}], "clients": []}],
    "roles": [
        {
            "rolename": "locked",
            "acls": [{"acltype": "subscribePattern", "topic": "har/locked-1/imu", "allow": False}],
        }
    ],
    "anonymousGroup": "anonymous",
}


def dynsec_plugin() -> Path:
    """Mosquitto's dynamic-security plugin (shipped with the Debian/Ubuntu package)."""
    found = sorted(Path("/usr/lib").glob("**/mosquitto_dynamic_security.so"))
    found += sorted(Path("/usr/local/lib").glob("**/mosquitto_dynamic_security.so"))
    assert found, "mosquitto_dynamic_security.so not found: install mosquitto 2.x"
    return found[0]


def test_refused_subscription_fails_the_start(tmp_path: Path, run_service) -> None:
    broker = MosquittoBroker()
    (broker.workdir / "dynsec.json").write_text(json.dumps(DYNSEC))
    broker.extra_config = (
        f"plugin {dynsec_plugin()}\nplugin_opt_config_file {broker.workdir / 'dynsec.json'}\n"
    )
    with broker:
        client = connect(broker.host, broker.port)
        try:
            service = serve(run_service, settings_for(broker, tmp_path))
            requester = Requester(client)
            for device in ("open-1", "locked-1"):
                announce(client, device)
            refused = requester.send({"action": "start", "device": "locked-1", "label": "Squat"})
            assert not refused["ok"], refused
            assert "refused the subscription to har/locked-1/imu" in refused["error"]
            assert "not authorized" in refused["error"].lower()
            status = requester.send({"action": "status"})["data"]
            assert status["recording"] == [] and status["counts"]["sessions_discarded"] == 1
            assert not list(tmp_path.rglob("*.seg")) and not list(tmp_path.rglob("*.parquet"))
            assert handler(service).details()["imu_subscriptions"] == []
            started = requester.send({"action": "start", "device": "open-1", "label": "Squat"})
            assert started["ok"], started
        finally:
            client.loop_stop()
            client.disconnect()


def _stream_in_background(client: Any, device: str) -> Callable[[], None]:
    """Publish frames of ``device`` every 50 ms until the returned function is called."""
    done = threading.Event()

    def run() -> None:
        seq = 0
        while not done.is_set():
            client.publish(f"har/{device}/imu", make_frame(device, seq)[1], qos=1)
            seq += 1
            done.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join(5)
        client.loop_stop()
        client.disconnect()

    return stop
