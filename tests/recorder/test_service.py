"""The recorder service on a real broker: commands, replies, status, hostile input, disk errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from imu_har.runtime.client import Collector, connect
from tests.support.recorder import (
    FlakyDisk,
    expected_rows,
    make_frame,
    read_recordings,
    recorded_rows,
)
from tests.support.recorder_mqtt import (
    Requester,
    announce,
    publish_frames,
    serve,
    settings_for,
    wait_rows,
)

pytestmark = pytest.mark.broker
DEV = "wrist-1"


def test_v5_start_status_list_stop(broker, run_service, mqtt_client, tmp_path: Path) -> None:
    service = serve(run_service, settings_for(broker, tmp_path))
    requester = Requester(mqtt_client)
    retained = Collector(mqtt_client, "har/recorder/status")
    announce(mqtt_client, DEV)  # the gateway's retained status: the device is known
    publish_frames(mqtt_client, DEV, range(1))  # before the start: not recorded

    reply = requester.send({"action": "start", "device": DEV, "label": "Squat", "subject": "bo"})
    assert reply["ok"] and reply["action"] == "start", reply
    session = reply["data"]["session"]
    publish_frames(mqtt_client, DEV, range(1, 41))
    status = wait_rows(requester, 200)
    assert status["recording"][0]["session"] == session
    assert status["recording"][0]["rows"] == 200

    def shows_rows(messages: list) -> bool:
        last = json.loads(messages[-1].payload) if messages else {}
        return any(s.get("rows") == 200 for s in last.get("recording", []))

    assert shows_rows(retained.wait_for(timeout=10, predicate=shows_rows))

    stopped = requester.send({"action": "stop", "session": session})
    assert stopped["ok"] and stopped["data"]["rows"] == 200 and stopped["data"]["finalized"]
    listed = requester.send({"action": "list"})
    assert [s["session"] for s in listed["data"]["sessions"]] == [session]

    frames = [make_frame(DEV, seq)[0] for seq in range(1, 41)]
    table = read_recordings(tmp_path)
    assert recorded_rows(table) == expected_rows(frames)
    assert set(table["label"].to_pylist()) == {"Squat"}
    assert set(table["subject"].to_pylist()) == {"bo"}
    assert len(pd.read_parquet(tmp_path / "recordings")) == 200
    assert service.runtime.counters.get("handler_error") == 0


def test_v311_client_gets_replies_on_the_fallback_topic(broker, run_service, tmp_path: Path):
    serve(run_service, settings_for(broker, tmp_path, require_known_device=False))
    client = connect(broker.host, broker.port, protocol=MQTTProtocolVersion.MQTTv311)
    try:
        replies = Collector(client, "har/recorder/reply")
        client.publish("har/recorder/cmd", b'{"action": "start", "device": "d3", "label": "Lunge"}')
        start = json.loads(replies.wait_for(1)[0].payload)
        assert start["ok"] and start["data"]["device"] == "d3"
        publish_frames(client, "d3", range(5))
        client.publish("har/recorder/cmd", b'{"action": "stop", "device": "d3"}', qos=1)
        stop = json.loads(replies.wait_for(2)[1].payload)
        assert stop["ok"] and stop["action"] == "stop" and stop["data"]["rows"] == 25
    finally:
        client.loop_stop()
        client.disconnect()
    assert recorded_rows(read_recordings(tmp_path)) == expected_rows(
        [make_frame("d3", s)[0] for s in range(5)]
    )


HOSTILE: list[tuple[bytes | dict[str, Any], str]] = [
    (b"not json", "invalid json"),
    (b"[]", ""),
    (b"null", ""),
    (b'{"action": "start", "device": "' + b"x" * 20_000 + b'"}', "too large"),
    ({"action": "explode"}, "action"),
    ({"action": "start", "device": DEV, "label": "../../etc"}, "label"),
    ({"action": "start", "device": DEV, "label": "Squat", "subject": "/etc/passwd"}, "subject"),
    ({"action": "start", "device": DEV, "label": "a/b"}, "label"),
    ({"action": "start", "device": "a/../b", "label": "Squat"}, "device"),
    ({"action": "start", "device": "dev/#", "label": "Squat"}, "device"),
    ({"action": "start", "device": "recorder", "label": "Squat"}, "reserved"),
    ({"action": "start", "device": DEV, "label": "Squat", "oops": 1}, "oops"),
    ({"action": "start", "device": "ghost", "label": "Squat"}, "unknown device"),
    ({"action": "start", "device": DEV, "label": "Dancing"}, "not one of"),
    ({"action": "start", "device": DEV, "label": "Squat", "max_seconds": -1}, "max_seconds"),
    ({"action": "stop", "session": "../x"}, "session"),
    ({"action": "stop"}, "exactly one"),
    ({"action": "stop", "device": DEV}, "not recording"),
]


def test_hostile_commands_get_errors_and_write_nothing(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    service = serve(run_service, settings_for(broker, tmp_path, labels=["Squat", "Lunge"]))
    requester = Requester(mqtt_client)
    announce(mqtt_client, DEV)
    for command, error in HOSTILE:
        reply = requester.send(command)
        assert reply["ok"] is False, (command, reply)
        assert error.lower() in str(reply["error"]).lower(), (command, reply)
    mqtt_client.publish("har/bad..dev/prediction", b"{}", qos=1)
    mqtt_client.publish("har/bad-status/status", b"[1, 2]", qos=1)
    assert requester.send({"action": "status"})["ok"]  # still serving
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written
    counters = service.runtime.counters
    assert counters.get("bad_command") >= 5 and counters.get("too_large") == 1
    assert counters.get("bad_device") == 1 and counters.get("bad_status") == 1
    reply = requester.send({"action": "start", "device": DEV, "label": "Squat"})
    assert reply["ok"], reply
    mqtt_client.publish(f"har/{DEV}/imu", b"\x01F garbage", qos=1)  # now subscribed
    assert requester.send({"action": "status"})["ok"]
    assert counters.get("truncated") == 1 and counters.get("handler_error") == 0


def test_disk_failure_reports_error_then_resumes(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    disk = FlakyDisk()
    serve(run_service, settings_for(broker, tmp_path, retry_seconds=0.2), disk)
    requester = Requester(mqtt_client)
    retained = Collector(mqtt_client, "har/recorder/status")
    announce(mqtt_client, DEV)
    assert requester.send({"action": "start", "device": DEV, "label": "Squat"})["ok"]
    publish_frames(mqtt_client, DEV, range(1, 11))
    wait_rows(requester, 50)
    disk.full = True
    publish_frames(mqtt_client, DEV, range(11, 31))

    def failing(messages: list) -> bool:
        return bool(messages) and "No space left" in str(json.loads(messages[-1].payload)["error"])

    assert failing(retained.wait_for(timeout=10, predicate=failing))
    refused = requester.send({"action": "start", "device": "other", "label": "Squat"})
    assert not refused["ok"] and "storage unavailable" in refused["error"]
    disk.full = False
    assert wait_rows(requester, 150)["error"] is None
    stopped = requester.send({"action": "stop", "device": DEV})
    assert stopped["data"]["rows"] == 150 and stopped["data"]["finalized"]
    assert recorded_rows(read_recordings(tmp_path)) == expected_rows(
        [make_frame(DEV, s)[0] for s in range(1, 31)]
    )
