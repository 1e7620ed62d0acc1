"""Issue 12, "Done when": after a burst of every hostile message, the same running system
still records a normal session end to end and predicts for every good device.

The services run as real processes on a private broker (no ACL: the attacker may
publish anything a client can, as on the development broker). The burst holds, in
one go, each message the issue reproduced against a service: names with a trailing
newline in recorder commands, commands whose MQTT v5 response topic is ``har/#``, a
frame of a good wearable received 10^6 s in the future, a frame of 1,000 samples at
1 Hz, frames at hundreds of distinct rates, device statuses of hundreds of fake ids,
a burst of reload commands (one path with a newline), and a foreign retained model
spec. Each service must refuse and count what it refuses, stay online, and go on:
predictions for both simulated wearables after the burst, a recording of one of
them with exactly its own label, and the classifier's own spec retained again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.protocol.codec import Frame, encode_frame
from imu_har.protocol.messages import DeviceStatus
from imu_har.protocol.model_spec import ModelSpec, load_spec
from imu_har.runtime.client import Collector, connect
from tests.support.system import DEFAULT_MODEL, Observer, running_system

pytestmark = [pytest.mark.slow, pytest.mark.broker]

DEVICES = ["sim-001", "sim-002"]
SERVICES = ["classifier", "windower", "recorder", "workout", "gateway"]


def predicted_since(observer: Observer, since: float, count: int = 5) -> bool:
    """Every good device got ``count`` predictions classified after ``since``."""
    return all(
        sum(p.classified_at > since for p, _ in observer.predictions[d][-80:]) >= count
        for d in DEVICES
    )


def rejected(observer: Observer, service: str) -> dict[str, int]:
    """The newest status's rejected counters of ``service``."""
    statuses = observer.statuses.get(service) or []
    return dict(statuses[-1].counters.rejected) if statuses else {}


def command(client: mqtt.Client, service: str, body: dict, response: str | None = None) -> None:
    """Publish a command (QoS 1), with a v5 response topic when given."""
    props = Properties(PacketTypes.PUBLISH)
    if response is not None:
        props.ResponseTopic = response
        props.CorrelationData = b"x"
    client.publish(f"har/{service}/cmd", json.dumps(body).encode(), qos=1, properties=props)


def frame(device: str, receive_time: float, rate: float = 50.0, n: int = 13) -> bytes:
    samples = np.zeros((n, 9), np.float32)
    samples[:, 2] = 1.0  # gravity on z: a plausible still wearable
    return encode_frame(Frame(device, 1, receive_time, rate, samples))


def burst(client: mqtt.Client) -> None:
    """Every hostile message of issue 12 that a client can send, at once."""
    now = time.time()
    for device, label in [("sim-001\n", "Jumping"), ("sim-001", "Jumping\n")]:
        command(client, "recorder", {"action": "start", "device": device, "label": label})
    for service in ("recorder", "classifier"):
        for target in ("har/#", "#", "$SYS/x"):
            command(client, service, {"action": "status"}, response=target)
    client.publish("har/sim-002/imu", frame("sim-002", now + 1e6), qos=1)
    client.publish("har/ghost/imu", frame("ghost", now, rate=1.0, n=1000), qos=1)
    for i in range(300):
        client.publish("har/ghost-rates/imu", frame("ghost-rates", now, rate=10.0 + i / 7))
    for i in range(300):
        status = DeviceStatus(device=f"fake-{i}", state="streaming", source="sim")
        client.publish(f"har/fake-{i}/status", status.to_payload())
    for i in range(100):
        path = "/etc\nFORGED log line" if i == 0 else f"nowhere/model-{i}"
        command(client, "classifier", {"action": "reload", "model": path})
    foreign = load_spec(DEFAULT_MODEL).model_copy(update={"version": "0123456789abcdef"})
    sent = client.publish(topics.MODEL_SPEC.format(), foreign.to_payload(), qos=1, retain=True)
    sent.wait_for_publish(30)  # the burst is out before the attacker leaves


def test_a_burst_of_every_hostile_message_leaves_the_system_working(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with MosquittoBroker() as broker, running_system(broker, tmp_path) as (observer, system):
        system.start("classifier", "--model", str(DEFAULT_MODEL), "--model-root", str(tmp_path))
        system.start("windower")
        system.start("recorder", "--data-dir", str(data_dir))
        system.start("workout")
        system.start("gateway", "--devices", "2", "--schedule", "Jumping:600")
        observer.wait(lambda: predicted_since(observer, 0.0), 60, "no predictions at all")

        attacker = connect(broker.host, broker.port, client_id="attacker")
        try:
            burst(attacker)
            done = time.time()
        finally:
            attacker.disconnect()
            attacker.loop_stop()

        observer.wait(lambda: predicted_since(observer, done + 1.0), 60, "predictions stopped")
        counted = {
            "windower": ("time_in_future", "frame_too_long"),
            "recorder": ("bad_command", "bad_response_topic"),
            "classifier": ("bad_response_topic", "foreign_spec"),
        }

        def all_counted() -> bool:
            return all(
                all(rejected(observer, s).get(reason, 0) >= 1 for reason in reasons)
                for s, reasons in counted.items()
            )

        observer.wait(all_counted, 30, f"not counted: {[rejected(observer, s) for s in counted]}")

        started = observer.request(
            "recorder", {"action": "start", "device": "sim-001", "label": "Jumping"}
        )
        assert started["ok"], started
        since = time.time()
        observer.wait(lambda: predicted_since(observer, since, 8), 60, "stalled while recording")
        stopped = observer.request("recorder", {"action": "stop", "device": "sim-001"})
        assert stopped["ok"], stopped
        assert stopped["data"]["rows"] > 0

        reader = connect(broker.host, broker.port, client_id="spec-reader")
        try:
            spec_messages = Collector(reader, topics.MODEL_SPEC.format()).wait_for(1)
            assert spec_messages and spec_messages[-1].retain
            retained = ModelSpec.from_payload(bytes(spec_messages[-1].payload))
            assert retained == load_spec(DEFAULT_MODEL)
        finally:
            reader.disconnect()
        for name in SERVICES:
            process = system.services[name].process
            assert process is not None and process.poll() is None, system.services[name].tail()
            assert observer.statuses[name][-1].state == "online", name
        system.stop_cleanly()

    files = list((data_dir / "recordings").rglob("*.parquet"))
    rows = pd.concat([pd.read_parquet(f) for f in files])
    assert len(rows) == stopped["data"]["rows"]
    assert set(rows["device"].astype(str)) == {"sim-001"}
    manifests = [json.loads(p.read_text()) for p in (data_dir / "sessions").glob("*.json")]
    assert [m["label"] for m in manifests] == ["Jumping"]
