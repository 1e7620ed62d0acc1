"""Commands that once took the recorder down, against a real broker (issue 12.1, 12.2).

12.1: a start for device ``"sim-001\\n"`` passed the ``$``-anchored validators; the
broker then refused the recorder's SUBSCRIBE to that topic by closing the
connection ("Malformed packet"), the recorder reconnected in a loop, and since
the command was never acknowledged the broker redelivered it after every
restart. A label ``"Squat\\n"`` became a second class in the Parquet files.

12.2: a command whose MQTT v5 response topic cannot be published to (``har/#``)
raised in the reply path; that message and the rest of its batch were never
acknowledged, the broker's in-flight window filled, and the recorder got no
more commands while it still reported online, also after a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.runtime.client import Collector, connect
from tests.support.recorder import read_recordings
from tests.support.recorder_mqtt import (
    Requester,
    announce,
    handler,
    publish_frames,
    serve,
    settings_for,
    wait_rows,
)

pytestmark = pytest.mark.broker
DEV = "sim-001"
# Mosquitto 2.0 reads max_inflight_messages like every integer option: the last line wins
# (checked: 20 QoS 1 messages to a client that never acknowledges, 5 arrive), so this
# overrides the 1000 that MosquittoBroker writes before extra_config.
WINDOW = 5

CONTROL_CHARACTERS: list[dict[str, Any]] = [
    {"action": "start", "device": f"{DEV}\n", "label": "Squat"},
    {"action": "start", "device": f"{DEV}\r", "label": "Squat"},
    {"action": "start", "device": f"{DEV}\t", "label": "Squat"},
    {"action": "start", "device": DEV, "label": "Squat\n"},
    {"action": "start", "device": DEV, "label": "Squat", "subject": "ann\n"},
    {"action": "stop", "device": f"{DEV}\n"},
    {"action": "stop", "session": "20261204T101500Z-sim-001-3fa2c1\n"},
]


def records_a_session(requester: Requester, client: Any, device: str, first: int) -> None:
    """Start ``device`` as Squat, record 10 frames (50 rows), stop: all of it works."""
    started = requester.send({"action": "start", "device": device, "label": "Squat"})
    assert started["ok"], started
    publish_frames(client, device, range(first, first + 10))
    assert wait_rows(requester, 50)["recording"][0]["rows"] == 50
    stopped = requester.send({"action": "stop", "device": device})
    assert stopped["ok"] and stopped["data"]["rows"] == 50 and stopped["data"]["finalized"]


def test_control_characters_in_names_get_errors_and_never_reach_the_broker(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    settings = settings_for(broker, tmp_path, unknown_device_wait=1.0)
    service = serve(run_service, settings)
    requester = Requester(mqtt_client)
    announce(mqtt_client, DEV)
    for command in CONTROL_CHARACTERS:
        reply = requester.send(command)
        assert reply["ok"] is False and reply["action"] == command["action"], (command, reply)
        assert "bad_command" in reply["error"], (command, reply)
    status = requester.send({"action": "status"})["data"]
    assert status["recording"] == [] and status["error"] is None
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert handler(service).details()["imu_subscriptions"] == []
    assert service.runtime.counters.get("bad_command") == len(CONTROL_CHARACTERS)
    assert service.runtime.counters.get("disconnects") == 0

    records_a_session(requester, mqtt_client, DEV, 0)
    assert set(read_recordings(tmp_path)["label"].to_pylist()) == {"Squat"}

    # Every command was acknowledged: a restart on the same session gets none of them again.
    service.stop()
    again = serve(run_service, settings)
    assert requester.send({"action": "status"})["ok"]
    assert again.runtime.counters.get("bad_command") == 0
    assert again.runtime.counters.get("disconnects") == 0


@pytest.fixture()
def small_window() -> Iterator[MosquittoBroker]:
    """A private broker that lets at most :data:`WINDOW` QoS 1 messages wait for their ack."""
    with MosquittoBroker(extra_config=f"max_inflight_messages {WINDOW}\n") as running:
        yield running


HOSTILE_RESPONSE_TOPICS = ["har/#", "#", "$SYS/x", "+", "har/+/reply"]


def test_hostile_response_topics_never_block_the_recorder(
    small_window: MosquittoBroker, run_service, tmp_path: Path
) -> None:
    client = connect(small_window.host, small_window.port)
    try:
        settings = settings_for(small_window, tmp_path)
        service = serve(run_service, settings)
        requester = Requester(client)
        fallback = Collector(client, topics.RECORDER_REPLY.format())
        announce(client, DEV)
        good = []
        for _ in range(4):  # a burst: several windows' worth, hostile and good mixed
            for topic in HOSTILE_RESPONSE_TOPICS:
                requester.post({"action": "status"}, response_topic=topic)
            good.append(requester.post({"action": "status"}))
        for correlation in good:
            assert requester.wait(correlation, timeout=15)["ok"]
        hostile = 4 * len(HOSTILE_RESPONSE_TOPICS)
        assert len(fallback.wait_for(hostile, timeout=10)) == hostile  # answered there instead
        assert service.runtime.counters.get("bad_response_topic") == hostile
        records_a_session(requester, client, DEV, 0)

        # All of it was acknowledged: after a restart nothing comes again, and it still works.
        service.stop()
        fallback.clear()
        again = serve(run_service, settings)
        records_a_session(requester, client, DEV, 10)
        assert again.runtime.counters.get("bad_response_topic") == 0 and not fallback.messages
        assert again.runtime.counters.get("handler_error") == 0
        assert all(requester.replies_to(c) == 1 for c in good)
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_bug_in_one_command_leaves_the_rest_of_its_batch_handled_and_acknowledged(
    small_window: MosquittoBroker, run_service, tmp_path: Path, monkeypatch
) -> None:
    client = connect(small_window.host, small_window.port)
    try:
        settings = settings_for(small_window, tmp_path)
        service = serve(run_service, settings)
        core = handler(service).core
        real, calls = core.list_sessions, []

        def list_sessions() -> dict[str, Any]:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return real()

        monkeypatch.setattr(core, "list_sessions", list_sessions)
        requester = Requester(client)
        sent = [requester.post({"action": "list"}) for _ in range(3 * WINDOW)]
        replies = [requester.wait(correlation, timeout=15) for correlation in sent]
        assert replies[0]["ok"] is False and "internal error" in replies[0]["error"]
        assert all(r["ok"] and r["data"]["sessions"] == [] for r in replies[1:]), replies
        assert service.runtime.counters.get("handler_error") == 1

        service.stop()  # acknowledged, the failed one too: nothing is redelivered
        again = serve(run_service, settings)
        assert requester.send({"action": "list"})["ok"]
        assert all(requester.replies_to(c) == 1 for c in sent)
        assert again.runtime.counters.get("handler_error") == 0
    finally:
        client.loop_stop()
        client.disconnect()
