"""Hostile commands never cost a window, never grow the classifier, never forge a log line.

Issue 12: a command whose response topic was ``har/#`` made the reply raise and
the classifier silently dropped the rest of its batch (every window of it: they
are classified after the loop); 600 reload commands in a burst queued 600 loads
(117 -> 850 MB); a reload path with a newline forged a log line.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import Counter

import pytest

from imu_har.protocol.messages import Prediction
from imu_har.protocol.model_spec import load_spec
from imu_har.runtime.client import Collector
from tests.support.classifier import (
    Artifacts,
    command,
    send_command,
    start_classifier,
    status_where,
    window_payloads,
)

pytestmark = [pytest.mark.broker, pytest.mark.tf]
HOSTILE = ["har/#", "#", "$SYS/x"]  # response topics nobody can publish to


def windows_with_commands(client, artifacts: Artifacts, commands: list[tuple[dict, str]]) -> list:  # type: ignore[no-untyped-def]
    """30 windows, a command (with its response topic) amid every 10; the windows sent."""
    sent = window_payloads(artifacts.windows[:30], devices=3)
    for i, (topic, payload, _) in enumerate(sent):
        client.publish(topic, payload, qos=1)
        if i % 10 == 4:
            send_command(client, *commands[i // 10], b"c")
    return sent


def assert_all_classified(predictions: Collector, sent: list) -> None:  # type: ignore[type-arg]
    got = predictions.wait_for(len(sent), timeout=30)
    keys = sorted(
        (p.device, p.window_seq) for p in (Prediction.from_payload(m.payload) for m in got)
    )
    assert keys == sorted((w.device, w.seq) for _, _, w in sent)


def test_hostile_response_topics_cost_no_window(
    broker, run_service, mqtt_client, artifacts: Artifacts
) -> None:  # type: ignore[no-untyped-def]
    # batch_wait: the windows and commands arrive together and are handled as one batch
    start_classifier(broker, run_service, artifacts.first, backend="onnx", batch_wait=0.3)
    predictions = Collector(mqtt_client, "har/+/prediction")
    fallback = Collector(mqtt_client, "har/classifier/reply")
    actions = [{"action": "status"}, {"action": "reload"}, {"action": "status"}]
    sent = windows_with_commands(mqtt_client, artifacts, list(zip(actions, HOSTILE, strict=True)))
    assert_all_classified(predictions, sent)
    replies = fallback.wait_for(3, timeout=10)
    assert sorted(json.loads(m.payload)["action"] for m in replies) == [
        "reload",
        "status",
        "status",
    ]
    status = status_where(
        mqtt_client, lambda s: s["counters"]["rejected"].get("bad_response_topic", 0) >= 3
    )
    assert status["counters"]["rejected"]["bad_response_topic"] == 3
    assert "handler_error" not in status["counters"]["rejected"]


def test_a_reply_that_raises_costs_no_window(
    broker, run_service, mqtt_client, artifacts: Artifacts
) -> None:  # type: ignore[no-untyped-def]
    """The runtime's reply before commit cd20876 raised on ``har/#``: the handler survives it."""
    running = start_classifier(broker, run_service, artifacts.first, backend="onnx", batch_wait=0.3)
    runtime = running.runtime

    def old_reply(request, payload: bytes, fallback: str) -> None:  # type: ignore[no-untyped-def]
        runtime.client.publish(request.properties.ResponseTopic, payload, qos=1)  # raises on '#'

    runtime.reply = old_reply  # type: ignore[method-assign]
    predictions = Collector(mqtt_client, "har/+/prediction")
    replies = Collector(mqtt_client, "test/hostile/ok")
    status_command = {"action": "status"}
    topics = ["har/#", "#", "test/hostile/ok"]
    sent = windows_with_commands(mqtt_client, artifacts, [(status_command, t) for t in topics])
    assert_all_classified(predictions, sent)
    assert replies.wait_for(1, timeout=10)  # the command after the two that raised
    status = status_where(
        mqtt_client, lambda s: s["counters"]["rejected"].get("handler_error", 0) >= 2
    )
    assert status["counters"]["rejected"]["handler_error"] == 2


def test_a_burst_of_reloads_runs_two_loads_and_answers_each_once(
    broker, run_service, mqtt_client, artifacts: Artifacts
) -> None:  # type: ignore[no-untyped-def]
    first, second = load_spec(artifacts.first), load_spec(artifacts.second)
    handler = start_classifier(broker, run_service, artifacts.first, backend="onnx").handler
    gate, loads = threading.Event(), []
    load = handler.reloader.load  # type: ignore[attr-defined]

    def held_load(path: str):  # type: ignore[no-untyped-def]
        loads.append(path)  # the first load waits until the whole burst has been handled
        gate.wait(60)
        return load(path)

    handler.reloader.load = held_load  # type: ignore[attr-defined]
    response = f"test/burst/{uuid.uuid4().hex[:8]}"
    replies = Collector(mqtt_client, response)
    predictions = Collector(mqtt_client, "har/+/prediction")
    burst = {"action": "reload", "model": str(artifacts.second)}
    try:
        for i in range(50):
            send_command(mqtt_client, burst, response, str(i).encode())
        refused = replies.wait_for(48, timeout=30)  # every one replaced while #0 loads
        assert len(refused) == 48
        assert all("already in progress" in json.loads(m.payload)["error"] for m in refused)
        sent = window_payloads(artifacts.windows[:10], devices=2)
        for topic, payload, _ in sent:  # it keeps classifying meanwhile
            mqtt_client.publish(topic, payload, qos=1)
        got = predictions.wait_for(len(sent), timeout=20)
        assert len(got) == len(sent)
        assert {Prediction.from_payload(m.payload).model_version for m in got} == {first.version}
        assert loads == [str(artifacts.second)]
    finally:
        gate.set()
    got = replies.wait_for(50, timeout=60)
    assert len(replies.wait_for(51, timeout=1.0)) == 50  # one reply per command, no more
    assert Counter(m.properties.CorrelationData for m in got) == Counter(
        str(i).encode() for i in range(50)
    )
    served = {m.properties.CorrelationData for m in got if json.loads(m.payload)["ok"]}
    assert served == {b"0", b"49"}  # the first and the newest
    assert len(loads) == 2
    status = status_where(mqtt_client, lambda s: s["counters"]["events"].get("reloads") == 2)
    assert status["counters"]["rejected"]["reload_busy"] == 48
    assert status["details"]["model"]["version"] == second.version


def test_untrusted_paths_are_logged_escaped(
    broker, run_service, mqtt_client, artifacts: Artifacts, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    start_classifier(broker, run_service, artifacts.first, backend="onnx", model_root=tmp_path)
    forged = "\nERROR services.classifier: forged line"
    for path in (str(tmp_path / "x") + forged, "/elsewhere" + forged):  # inside, outside the root
        reply = command(mqtt_client, {"action": "reload", "model": path})
        assert not reply["ok"]
    lines = [record.getMessage() for record in caplog.records]
    assert not [line for line in lines if forged in line]
    assert sum(repr(forged)[1:-1] in line for line in lines) >= 2, lines
