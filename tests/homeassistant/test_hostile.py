"""Hostile topics and payloads: refused and counted, and never an invalid discovery topic or id."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from imu_har.protocol import topics
from imu_har.protocol.messages import DeviceStatus, ServiceStatus
from imu_har.protocol.workout import WorkoutState
from imu_har.runtime.client import Collector
from services.homeassistant.app import HomeAssistantSettings, build
from tests.support.homeassistant import SAFE_ID, schema_problems
from tests.support.publish import model_spec, prediction

pytestmark = pytest.mark.broker
ROOT, PREFIX = "hostile", "ha-hostile"
# Valid ids that are not valid Home Assistant ids as they are, some alike once simplified.
ODD_IDS = ["aa:bb:cc", "aa_bb_cc", "x.y_z", "x_y.z", "a_b", "a_5fb", "A_B"]
# Topic levels that are not device ids at all.
BAD_LEVELS = ["a b", "é", "..x", "x..y", "-lead", "a" * 65, "Service", "HomeAssistant"]
CONFIG = re.compile(rf"{PREFIX}/device/([A-Za-z0-9_-]+)/config")
# Every refusal, counted once each: statuses on the 6 bad levels that are not reserved
# names (a reserved level's status is another service's, ignored), and predictions and
# workout states on all 8; then one of each other attack in attack(). A spec label that
# is not a name is refused by the protocol (bad_json) before the bridge's own bad_label.
EXPECTED = {
    "bad_device": 6 + 8 + 8, "bad_status": 2, "device_mismatch": 1, "bad_json": 4,
    "too_large": 1, "too_many_labels": 1, "too_many_devices": 2,
}  # fmt: skip


def status(device: str) -> bytes:
    return DeviceStatus(device=device, state="streaming").to_payload()


def attack(client: Any) -> None:
    """Every kind of bad input, each published once (QoS 1, in order)."""
    send = lambda topic, payload: client.publish(topic, payload, qos=1)  # noqa: E731
    for level in BAD_LEVELS:
        send(f"{ROOT}/{level}/status", status("w1"))
        send(f"{ROOT}/{level}/prediction", prediction("w1", 0).to_payload())
        send(
            f"{ROOT}/{level}/workout",
            WorkoutState(device="w1", state="rest", date="2026-12-04").to_payload(),
        )
    send(topics.DEVICE_STATUS.format(ROOT, device="w1"), status("w2"))  # another's status
    send(topics.PREDICTION.format(ROOT, device="w1"), prediction("w2", 0).to_payload())
    send(topics.WORKOUT.format(ROOT, device="w1"), b"{not json")
    send(topics.REP.format(ROOT, device="w1"), b"[]")
    send(topics.SET.format(ROOT, device="w1"), json.dumps({"device": "w1", "reps": -1}).encode())
    send(topics.PREDICTION.format(ROOT, device="w1"), b"x" * 300_000)
    spec = model_spec()
    huge = spec.model_copy(update={"labels": [f"L{i}" for i in range(100)]})  # > max_labels 64
    send(topics.MODEL_SPEC.format(ROOT), huge.to_payload())
    odd = spec.model_copy(update={"labels": ["Squat", '"><img src=x>', "Pushup"]})
    send(topics.MODEL_SPEC.format(ROOT), odd.to_payload())
    send(topics.HA_STATUS.format(PREFIX), b"ONLINE!!" * 100)
    loud = prediction("w1", 1, "Squat")
    loud.probabilities["Squat"] = 50.0  # out of range, still finite: clamped
    send(topics.PREDICTION.format(ROOT, device="w1"), loud.to_payload())
    for device in [*ODD_IDS, "over-1", "over-2"]:  # 1 + 7 fit in --max-wearables 8
        send(topics.DEVICE_STATUS.format(ROOT, device=device), status(device))


def test_hostile_input_is_counted_and_never_makes_an_invalid_discovery(  # type: ignore[no-untyped-def]
    broker, run_service, mqtt_client
):
    settings = HomeAssistantSettings(
        mqtt_port=broker.port,
        topic_root=ROOT,
        discovery_prefix=PREFIX,
        status_interval=0.3,
        max_wearables=8,
        max_labels=64,
    )
    bridge_status = Collector(
        mqtt_client, topics.SERVICE_STATUS.format(ROOT, service="homeassistant")
    )
    out = Collector(mqtt_client, f"{PREFIX}/#")
    states = Collector(mqtt_client, f"{ROOT}/homeassistant/#")
    run_service(*build(settings))
    mqtt_client.publish(topics.MODEL_SPEC.format(ROOT), model_spec().to_payload(), qos=1)
    mqtt_client.publish(topics.DEVICE_STATUS.format(ROOT, device="w1"), status("w1"), qos=1)
    attack(mqtt_client)

    def rejected(ms: list[Any]) -> dict[str, int]:
        return ServiceStatus.from_payload(ms[-1].payload).counters.rejected if ms else {}

    got = rejected(bridge_status.wait_for(30, predicate=lambda ms: rejected(ms) == EXPECTED))
    assert got == EXPECTED  # and nothing else: no handler_error
    wanted = {topics.HA_STATE.format(ROOT, device=d) for d in ["w1", *ODD_IDS]}
    states.wait_for(10, predicate=lambda ms: wanted <= {m.topic for m in ms})
    out.wait_for(10, predicate=lambda ms: len({m.topic for m in ms}) >= 1 + len(ODD_IDS))

    discovered = [m for m in out.messages if m.topic != topics.HA_STATUS.format(PREFIX)]
    nodes = [CONFIG.fullmatch(m.topic) for m in discovered]
    assert all(nodes), [m.topic for m in discovered]
    assert len({n.group(1) for n in nodes if n}) == 1 + len(ODD_IDS)
    unique_ids: set[str] = set()
    for message in discovered:
        config = json.loads(message.payload)
        assert schema_problems(config) == []
        assert config["components"]["exercise"]["options"][:3] == ["Pushup", "Squat", "Jumping"]
        ids = {c["unique_id"] for c in config["components"].values()}
        assert all(SAFE_ID.fullmatch(i) for i in ids) and not ids & unique_ids
        unique_ids |= ids
    levels = {m.topic.split("/")[2] for m in states.messages}
    assert levels == {"w1", *ODD_IDS}
    w1 = [json.loads(m.payload) for m in states.messages if m.topic.endswith("w1/state")]
    assert max(s["confidence"] for s in w1) <= 100
