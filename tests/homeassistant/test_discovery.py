"""The discovery payload against Home Assistant's documented schema (tests/support)."""

from __future__ import annotations

import copy
import json
import re
import time

import pytest

from imu_har.protocol.messages import DeviceStatus
from services.homeassistant.core import Bridge
from services.homeassistant.discovery import ENTITIES, FORMS, LINK_STATES
from services.homeassistant.ids import SAFE
from services.homeassistant.settings import HomeAssistantSettings
from tests.support.homeassistant import entity_available, schema_problems
from tests.support.publish import model_spec

NOW = time.time()
TOPIC = re.compile(r"homeassistant/device/([a-zA-Z0-9_-]+)/config")


def discovered(device: str = "aa:bb.cc_1", root: str = "har") -> tuple[str, dict]:  # type: ignore[type-arg]
    core = Bridge(HomeAssistantSettings(topic_root=root))
    core.spec(model_spec(), NOW)
    status = DeviceStatus(device=device, state="streaming", source="ble")
    topic, payload, qos, retain = core.status(device, status, NOW, retained=False)[0]
    assert (qos, retain) == (1, True)
    return topic, json.loads(payload)


def test_the_payload_has_every_required_key_and_only_documented_ones() -> None:
    topic, message = discovered()
    assert schema_problems(message) == []
    match = TOPIC.fullmatch(topic)
    assert match and message["device"]["identifiers"] == [match.group(1)]
    assert message["device"]["manufacturer"] == "imu-har" and message["device"]["sw_version"]
    assert message["device"]["name"] == "aa:bb.cc_1" and message["device"]["model"]
    assert message["origin"]["name"] == "imu-har"
    assert set(message["components"]) == {e.key for e in ENTITIES}


def test_the_entities_are_the_ones_the_issue_asks_for() -> None:
    components = discovered()[1]["components"]
    exercise = components["exercise"]
    assert exercise["device_class"] == "enum"
    assert exercise["options"] == ["Pushup", "Squat", "Jumping", "rest", "unknown"]
    assert components["form"]["options"] == list(FORMS)
    assert components["link"]["options"] == list(LINK_STATES)
    assert components["reps_today"]["state_class"] == "total_increasing"
    assert components["sets_today"]["state_class"] == "total_increasing"
    assert components["confidence"]["unit_of_measurement"] == "%"
    assert components["in_set"]["platform"] == "binary_sensor"
    assert components["workout"]["platform"] == "event"
    assert components["workout"]["event_types"] == ["repetition", "set"]


def test_unique_ids_are_stable_safe_and_distinct() -> None:
    a = discovered("wrist.1")[1]["components"]
    b = discovered("wrist_1")[1]["components"]  # would collide under a naive '.' -> '_'
    again = discovered("wrist.1")[1]["components"]
    ids = [c["unique_id"] for c in (*a.values(), *b.values())]
    assert len(set(ids)) == len(ids) and all(SAFE.fullmatch(i) for i in ids)
    assert [c["unique_id"] for c in a.values()] == [c["unique_id"] for c in again.values()]
    other_root = discovered("wrist.1", root="gym/floor-2")[1]["components"]
    assert not {c["unique_id"] for c in other_root.values()} & set(ids)


def test_availability_is_bridge_and_link_except_for_the_link_itself() -> None:
    components = discovered("wrist-1")[1]["components"]
    bridge, link = "har/service/homeassistant/status", "har/homeassistant/wrist-1/availability"
    online = json.dumps({"state": "online"}).encode()
    offline = json.dumps({"state": "offline"}).encode()
    cases = [
        ({bridge: online, link: b"online"}, True, True),
        ({bridge: online, link: b"offline"}, False, True),
        ({bridge: offline, link: b"online"}, False, False),
        ({link: b"online"}, False, False),
    ]
    for retained, entities, link_entity in cases:
        for key, config in components.items():
            want = link_entity if key == "link" else entities
            assert entity_available(config, retained) is want, (key, retained)


def test_every_value_template_reads_a_field_of_the_state_message() -> None:
    core = Bridge(HomeAssistantSettings())
    out = core.status("w", DeviceStatus(device="w", state="connected"), NOW, retained=False)
    state = json.loads(next(p for t, p, *_ in out if t.endswith("/state")))
    components = json.loads(out[0][1])["components"]
    for key, config in components.items():
        if config["platform"] == "event":
            assert config["state_topic"].endswith("/event")
            continue
        field = re.search(r"value_json\.(\w+)", config["value_template"]).group(1)  # type: ignore[union-attr]
        assert field in state, key
        if "options" in config and key != "exercise":
            assert state[field] in config["options"], key


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m["components"]["reps"].pop("state_topic"), "missing state_topic"),
        (lambda m: m["components"]["workout"].pop("event_types"), "missing event_types"),
        (lambda m: m["components"]["exercise"].pop("unique_id"), "missing unique_id"),
        (lambda m: m["components"]["reps"].update(colour="red"), "unknown key colour"),
        (lambda m: m["components"]["exercise"].update(state_class="total"), "cannot go with"),
        (lambda m: m.pop("origin"), "missing origin"),
        (lambda m: m["device"].pop("identifiers"), "needs identifiers"),
        (lambda m: m["components"]["link"]["availability"][0].pop("topic"), "missing topic"),
    ],
)
def test_the_schema_check_would_see_a_broken_payload(change, problem) -> None:  # type: ignore[no-untyped-def]
    message = copy.deepcopy(discovered()[1])
    change(message)
    assert any(problem in p for p in schema_problems(message)), schema_problems(message)
