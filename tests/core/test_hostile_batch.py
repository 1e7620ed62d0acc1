"""One hostile message never stops the rest of its batch (issue 12, item 2).

A command whose MQTT v5 response topic was ``har/#`` raised inside the reply
path; the recorder's batch stopped there, so that message and the ones after
it were never acknowledged, the broker's in-flight window filled and no
command got through any more. Here a manual-ack runtime (like the recorder's)
gets such commands mixed with a handler bug, and every other command in the
same batches is still answered and acknowledged.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imu_har.runtime.client import Collector
from imu_har.runtime.handler import each, reply_target
from imu_har.runtime.service import Inbound, ServiceRuntime
from imu_har.runtime.settings import MqttSettings


class Commands:
    """Answers every command with its own payload; ``boom`` is a handler bug."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.handled: list[bytes] = []

    def subscriptions(self) -> list[tuple[str, int]]:
        return [("hb/cmd", 1)]

    def handle_batch(self, messages: list[Inbound]) -> None:
        each(self.runtime, messages, self._one, after=lambda m: m.ack())

    def _one(self, message: Inbound) -> None:
        if message.payload == b"boom":
            raise RuntimeError("a bug in one command")
        self.handled.append(message.payload)
        self.runtime.reply(message, message.payload, "hb/reply")

    def tick(self, now: float) -> None: ...

    def details(self) -> dict[str, Any]:
        return {}

    def close(self) -> None: ...


def send(client, payload: bytes, response: str | None) -> None:  # type: ignore[no-untyped-def]
    props = Properties(PacketTypes.PUBLISH)
    if response is not None:
        props.ResponseTopic = response
        props.CorrelationData = payload
    client.publish("hb/cmd", payload, qos=1, properties=props).wait_for_publish(5)


def test_bad_response_topics_and_a_handler_bug_leave_the_batch_served(  # type: ignore[no-untyped-def]
    broker, mqtt_client, run_service
) -> None:
    settings = MqttSettings(mqtt_port=broker.port, log_level="WARNING", client_id="hb-svc")
    runtime = ServiceRuntime("hb", settings, manual_ack=True, max_batch=500, batch_wait=0.05)
    handler = Commands(runtime)
    run_service(runtime, handler)
    mine = f"test/{uuid.uuid4().hex[:8]}"
    replies = Collector(mqtt_client, f"{mine}/#")
    fallback = Collector(mqtt_client, "hb/reply")
    # Mosquitto passes wildcards and $-topics on; it drops a client that sends control
    # characters (those are covered by the unit test below).
    hostile = ["har/#", "har/+/x", "#", "$SYS/broker"]
    good = []
    for round_ in range(30):  # more rounds than fit one in-flight window of stuck messages
        for topic in hostile:
            send(mqtt_client, f"h{round_}-{len(topic)}".encode(), topic)
        send(mqtt_client, b"boom", f"{mine}/boom")
        payload = json.dumps({"round": round_}).encode()
        good.append(payload)
        send(mqtt_client, payload, f"{mine}/{round_}")
    got = replies.wait_for(len(good), timeout=20)
    assert sorted(m.payload for m in got) == sorted(good)
    assert all(m.properties.CorrelationData == m.payload for m in got)
    hostile_replies = fallback.wait_for(30 * len(hostile), timeout=20)
    assert len(hostile_replies) == 30 * len(hostile)  # answered on the fallback topic instead
    counters = runtime.counters.snapshot()
    assert counters.rejected["bad_response_topic"] == 30 * len(hostile)
    assert counters.rejected["handler_error"] == 30
    # Everything was acknowledged: a new command after all of that is still served at once.
    send(mqtt_client, b"after", f"{mine}/after")
    assert any(m.payload == b"after" for m in replies.wait_for(len(good) + 1, timeout=10))


def test_reply_target_falls_back_for_a_topic_that_cannot_be_published() -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "har/#"
    topic, out, problem = reply_target(Inbound("x/cmd", b"", properties=props), "x/reply")
    assert (topic, out) == ("x/reply", None)
    assert problem is not None and "wildcard" in problem
    props.ResponseTopic = "client/abc/reply"
    props.CorrelationData = b"c1"
    topic, out, problem = reply_target(Inbound("x/cmd", b"", properties=props), "x/reply")
    assert (topic, problem) == ("client/abc/reply", None)
    assert out is not None and out.CorrelationData == b"c1"


def test_each_runs_after_for_every_message_whatever_happens() -> None:
    class Sink:
        name = "sink"

        def __init__(self) -> None:
            self.rejects: list[str] = []

        def reject(self, reason: str, detail: str) -> None:
            self.rejects.append(reason)

        def error(self, text: str) -> None: ...

    from imu_har.protocol.errors import PayloadError

    def handle(message: Inbound) -> None:
        if message.payload == b"bad":
            raise PayloadError("bad_json", "nope")
        if message.payload == b"bug":
            raise KeyError("bug")

    sink, seen = Sink(), []
    batch = [Inbound("t", p) for p in (b"ok", b"bad", b"bug", b"ok2")]
    each(sink, batch, handle, after=lambda m: seen.append(m.payload))
    assert seen == [b"ok", b"bad", b"bug", b"ok2"]
    assert sink.rejects == ["bad_json", "handler_error"]
    time.sleep(0)  # nothing asynchronous here
