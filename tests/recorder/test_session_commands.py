"""Relabel, exclude, delete, set_reps over a real broker: v5 replies, v3.1.1 fallback, attacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from imu_har.runtime.client import Collector, connect
from tests.support.recorder import read_recordings
from tests.support.recorder_mqtt import Requester, announce, record_session, serve, settings_for

pytestmark = pytest.mark.broker
DEV = "wrist-1"


def record(requester: Requester, client: Any, label: str, first: int, **extra: Any) -> str:
    """One finished session of 10 frames (50 rows) of ``DEV``; its id."""
    return record_session(requester, client, DEV, label, first, **extra)


def manifest(data: Path, session: str) -> dict[str, Any]:
    return dict(json.loads((data / "sessions" / f"{session}.json").read_text()))


def test_session_edits_over_v5(broker, run_service, mqtt_client, tmp_path: Path) -> None:
    service = serve(run_service, settings_for(broker, tmp_path))
    requester = Requester(mqtt_client)
    announce(mqtt_client, DEV)
    squat = record(requester, mqtt_client, "Squat", 0, reps=10, subject="ann")
    lunge = record(requester, mqtt_client, "Lunge", 10)
    assert manifest(tmp_path, squat)["reps"] == 10

    reply = requester.send({"action": "relabel", "session": squat, "label": "Pushup"})
    assert reply["ok"] and reply["action"] == "relabel", reply
    assert reply["data"]["label"] == "Pushup" and reply["data"]["rows_rewritten"] == 50
    table = read_recordings(tmp_path).select(["session", "label"]).to_pandas()
    assert set(table.loc[table["session"] == squat, "label"]) == {"Pushup"}

    reply = requester.send({"action": "set_reps", "session": squat, "reps": 12})
    assert reply["ok"] and reply["data"]["reps"] == 12, reply
    reply = requester.send({"action": "exclude", "session": lunge, "excluded": True})
    assert reply["ok"] and reply["data"]["excluded"] is True, reply
    listed = {s["session"]: s for s in requester.send({"action": "list"})["data"]["sessions"]}
    assert listed[squat]["label"] == "Pushup" and listed[squat]["reps"] == 12
    assert listed[lunge]["excluded"] is True and listed[squat]["excluded"] is False

    reply = requester.send({"action": "delete", "session": lunge})
    assert reply["ok"] and reply["data"] == {"session": lunge, "deleted": True, "parts": 1}
    assert set(read_recordings(tmp_path)["session"].to_pylist()) == {squat}
    assert not (tmp_path / "sessions" / f"{lunge}.json").exists()
    counts = requester.send({"action": "status"})["data"]["counts"]
    assert counts["sessions_relabel"] == 1 and counts["sessions_delete"] == 1
    assert service.runtime.counters.get("handler_error") == 0


def test_v311_client_gets_edit_replies_on_the_fallback_topic(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    serve(run_service, settings_for(broker, tmp_path))
    requester = Requester(mqtt_client)
    announce(mqtt_client, DEV)
    session = record(requester, mqtt_client, "Squat", 0)
    client = connect(broker.host, broker.port, protocol=MQTTProtocolVersion.MQTTv311)
    try:
        replies = Collector(client, "har/recorder/reply")
        command = {"action": "set_reps", "session": session, "reps": 7}
        client.publish("har/recorder/cmd", json.dumps(command).encode(), qos=1)
        reply = json.loads(replies.wait_for(1)[0].payload)
        assert reply["ok"] and reply["action"] == "set_reps" and reply["data"]["reps"] == 7
        client.publish("har/recorder/cmd", b'{"action": "delete", "session": "nope"}', qos=1)
        reply = json.loads(replies.wait_for(2)[1].payload)
        assert reply["ok"] is False and "no finished session" in reply["error"], reply
    finally:
        client.loop_stop()
        client.disconnect()
    assert manifest(tmp_path, session)["reps"] == 7


def hostile(session: str) -> list[tuple[dict[str, Any] | bytes, str, str]]:
    """(command, error text, counter) for commands that must change nothing."""
    return [
        ({"action": "delete", "session": "../sessions"}, "session", "bad_command"),
        ({"action": "delete", "session": "/etc/passwd"}, "session", "bad_command"),
        ({"action": "delete", "session": "*"}, "session", "bad_command"),
        ({"action": "delete", "session": f"{session}\n"}, "session", "bad_command"),
        ({"action": "delete", "session": session[:-2] + "[0-9]*"}, "session", "bad_command"),
        ({"action": "delete"}, "session", "bad_command"),
        ({"action": "delete", "session": session, "force": True}, "force", "bad_command"),
        ({"action": "relabel", "session": session, "label": "Squat\n"}, "label", "bad_command"),
        ({"action": "relabel", "session": session, "label": "../x"}, "label", "bad_command"),
        ({"action": "relabel", "session": session, "label": "x" * 65}, "label", "bad_command"),
        ({"action": "relabel", "session": session, "label": "Dancing"}, "not one of", "command"),
        ({"action": "exclude", "session": session, "excluded": "yes"}, "boolean", "bad_command"),
        ({"action": "exclude", "session": session, "excluded": 1}, "boolean", "bad_command"),
        ({"action": "set_reps", "session": session, "reps": -1}, "reps", "bad_command"),
        ({"action": "set_reps", "session": session, "reps": 10**9}, "reps", "bad_command"),
        ({"action": "set_reps", "session": session, "reps": 2.5}, "reps", "bad_command"),
        ({"action": "set_reps", "session": session, "reps": True}, "reps", "bad_command"),
        ({"action": "set_reps", "session": session, "reps": "12"}, "reps", "bad_command"),
        ({"action": "set_reps", "session": session}, "reps", "bad_command"),
        ({"action": "start", "device": DEV, "label": "Squat", "reps": -3}, "reps", "bad_command"),
        (b'{"action": "relabel", "session": "' + b"a" * 20_000 + b'"}', "too large", "too_large"),
        ({"action": "set_reps", "session": "2026-x-0", "reps": 1}, "no finished", "command"),
    ]  # fmt: skip


def test_hostile_edits_are_refused_counted_and_change_nothing(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    service = serve(run_service, settings_for(broker, tmp_path, labels=["Squat", "Lunge"]))
    requester = Requester(mqtt_client)
    announce(mqtt_client, DEV)
    session = record(requester, mqtt_client, "Squat", 0)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    attacks = hostile(session)
    for command, error, _ in attacks:
        reply = requester.send(command)
        assert reply["ok"] is False, (command, reply)
        assert error.lower() in str(reply["error"]).lower(), (command, reply)
    # An open session is not edited either (its segment is still being written).
    assert requester.send({"action": "start", "device": DEV, "label": "Lunge"})["ok"]
    open_id = requester.send({"action": "status"})["data"]["recording"][0]["session"]
    reply = requester.send({"action": "delete", "session": open_id})
    assert reply["ok"] is False and "still recording" in reply["error"], reply
    assert requester.send({"action": "stop", "device": DEV})["ok"]
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p in before}
    assert after == before
    counters = service.runtime.counters
    expected_bad = sum(counter == "bad_command" for _, _, counter in attacks)
    assert counters.get("bad_command") == expected_bad
    assert counters.get("too_large") == 1
    assert counters.get("command_errors") == 3  # unknown label, unknown session, open session
    assert counters.get("handler_error") == 0
    assert manifest(tmp_path, session)["label"] == "Squat"
