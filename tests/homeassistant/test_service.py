"""The bridge over a real Mosquitto: discovery, state, rate limit, birth, forgetting.

Each test has a topic root and discovery prefix of its own (the broker is
shared by the module and keeps retained messages).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest

from imu_har.protocol import topics
from imu_har.protocol.messages import DeviceStatus, ServiceStatus
from imu_har.runtime.client import Collector
from services.homeassistant.app import HomeAssistantSettings, build
from services.homeassistant.ids import node_id
from tests.support.homeassistant import retained_snapshot, schema_problems
from tests.support.publish import model_spec, prediction

pytestmark = pytest.mark.broker
_names = itertools.count()


class Scene:
    """One test's root, prefix, topics and a watching client."""

    def __init__(self, broker: Any, client: Any) -> None:
        n = next(_names)
        self.broker, self.client = broker, client
        self.root, self.prefix = f"svc{n}", f"ha-svc{n}"

    def start(self, run_service: Any, **overrides: Any) -> Any:
        settings = HomeAssistantSettings(
            mqtt_port=self.broker.port, topic_root=self.root, discovery_prefix=self.prefix,
            status_interval=0.3, **overrides,
        )  # fmt: skip
        return run_service(*build(settings))

    def config(self, device: str) -> str:
        return topics.HA_DISCOVERY.format(self.prefix, node=node_id(self.root, device))

    def state(self, device: str) -> str:
        return topics.HA_STATE.format(self.root, device=device)

    def status(self, device: str, state: str = "streaming") -> None:
        message = DeviceStatus(device=device, state=state, source="sim")  # type: ignore[arg-type]
        topic = topics.DEVICE_STATUS.format(self.root, device=device)
        self.client.publish(topic, message.to_payload(), qos=1, retain=True).wait_for_publish(5)

    def predict(self, device: str, label: str, seq: int = 0) -> None:
        topic = topics.PREDICTION.format(self.root, device=device)
        self.client.publish(topic, prediction(device, seq, label).to_payload(), qos=1)

    def spec(self) -> None:
        topic = topics.MODEL_SPEC.format(self.root)
        self.client.publish(topic, model_spec().to_payload(), qos=1, retain=True)

    def bridge_status(self) -> Collector:
        return Collector(
            self.client, topics.SERVICE_STATUS.format(self.root, service="homeassistant")
        )


def payloads(messages: list[Any], topic: str) -> list[bytes]:
    return [bytes(m.payload) for m in messages if m.topic == topic]


def test_discovery_is_retained_json_with_every_required_field(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    scene = Scene(broker, mqtt_client)
    configs = Collector(mqtt_client, f"{scene.prefix}/#")
    scene.spec()
    scene.start(run_service)
    devices = ["wrist-1", "aa:bb:cc:dd:ee:ff", "left.ankle_2"]
    for device in devices:
        scene.status(device)
    wanted = {scene.config(d) for d in devices}
    configs.wait_for(predicate=lambda ms: wanted <= {m.topic for m in ms if m.payload})
    retained = retained_snapshot(broker.host, broker.port, [f"{scene.prefix}/#"])
    assert set(retained) == wanted
    for device in devices:
        message = json.loads(retained[scene.config(device)])
        assert schema_problems(message) == [], device
        assert message["device"]["name"] == device
        assert message["components"]["exercise"]["options"][:3] == ["Pushup", "Squat", "Jumping"]


def test_state_changes_go_out_and_unchanged_values_do_not(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    scene = Scene(broker, mqtt_client)
    scene.spec()
    status = scene.bridge_status()
    scene.start(run_service, max_state_rate=100.0, birth_delay=300.0)  # no resend in the test
    states = Collector(mqtt_client, topics.HA_STATE.subscription(scene.root))
    scene.status("w1")
    scene.predict("w1", "Squat", 0)

    def exercises(ms: list[Any]) -> list[str]:
        return [json.loads(m.payload)["exercise"] for m in ms]

    def handled(ms: list[Any]) -> int:
        return ServiceStatus.from_payload(ms[-1].payload).counters.messages_in if ms else 0

    states.wait_for(predicate=lambda ms: "Squat" in exercises(ms))
    for seq in range(1, 6):  # the same again, one at a time, well apart: nothing to send
        before = handled(status.messages)
        scene.predict("w1", "Squat", seq)
        status.wait_for(predicate=lambda ms, b=before: handled(ms) > b)  # type: ignore[misc]
    scene.predict("w1", "Pushup", 10)  # then a change, which marks the end
    got = exercises(states.wait_for(predicate=lambda ms: "Pushup" in exercises(ms)))
    assert got == ["unknown", "Squat", "Pushup"]  # the status, the first prediction, the change


def test_the_rate_limit_holds(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    scene = Scene(broker, mqtt_client)
    rate = 2.0
    scene.spec()
    scene.start(run_service, max_state_rate=rate, birth_delay=300.0)
    states = Collector(mqtt_client, topics.HA_STATE.subscription(scene.root))
    scene.status("w1")
    states.wait_for(1)
    begin = time.monotonic()
    labels = ["Pushup", "Squat", "Jumping"]
    for seq in range(150):  # every prediction changes the exercise
        scene.predict("w1", labels[seq % 3], seq)
    scene.predict("w1", "rest", 150)  # the last value, seen nowhere before
    got = states.wait_for(predicate=lambda ms: json.loads(ms[-1].payload)["exercise"] == "rest")
    elapsed = time.monotonic() - begin
    sent = len(got) - 1  # after the status's
    assert json.loads(got[-1].payload)["exercise"] == "rest"  # the newest value always follows
    assert 1 <= sent <= 1 + rate * elapsed + 1, (sent, elapsed)  # 151 changes, a handful sent


def test_home_assistant_online_brings_discovery_back(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    scene = Scene(broker, mqtt_client)
    scene.start(run_service, birth_delay=0.2)
    configs = Collector(mqtt_client, scene.config("w1"))
    scene.status("w1")
    configs.wait_for(1)
    mqtt_client.publish(scene.config("w1"), b"", qos=1, retain=True).wait_for_publish(5)
    assert retained_snapshot(broker.host, broker.port, [f"{scene.prefix}/#"]) == {}
    configs.clear()
    ha_status = topics.HA_STATUS.format(scene.prefix)
    mqtt_client.publish(ha_status, b"online", qos=1).wait_for_publish(5)
    configs.wait_for(predicate=lambda ms: any(m.payload for m in ms))
    retained = retained_snapshot(broker.host, broker.port, [f"{scene.prefix}/#"])
    assert schema_problems(json.loads(retained[scene.config("w1")])) == []


def test_a_forgotten_wearable_is_removed_from_home_assistant(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    scene = Scene(broker, mqtt_client)
    configs = Collector(mqtt_client, f"{scene.prefix}/#")
    scene.start(run_service, forget_after=1.5)
    scene.status("gone")
    configs.wait_for(predicate=lambda ms: any(m.payload for m in ms))
    removed = configs.wait_for(timeout=15, predicate=lambda ms: not ms[-1].payload)
    assert payloads(removed, scene.config("gone"))[-1] == b""
    assert retained_snapshot(broker.host, broker.port, [f"{scene.prefix}/#"]) == {}
    avail = topics.HA_AVAILABILITY.format(scene.root, device="gone")
    assert avail not in retained_snapshot(broker.host, broker.port, [f"{scene.root}/#"])


def test_status_reports_what_the_bridge_serves(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    scene = Scene(broker, mqtt_client)
    status = scene.bridge_status()
    scene.spec()
    scene.start(run_service)
    scene.status("w1")

    def serving(ms: list[Any]) -> bool:
        details = ServiceStatus.from_payload(ms[-1].payload).details if ms else {}
        return details.get("wearables") == 1 and details.get("available") == 1

    got = status.wait_for(predicate=serving)
    details = ServiceStatus.from_payload(got[-1].payload).details
    assert details["exercise_options"] == ["Pushup", "Squat", "Jumping", "rest", "unknown"]
    assert details["discovery_prefix"] == scene.prefix
