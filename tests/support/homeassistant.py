"""Home Assistant's side of the bridge, as its documentation specifies it, for the tests.

:data:`SCHEMA` is the table of required and allowed configuration keys per MQTT
platform, copied from home-assistant.io (``source/_integrations/mqtt.markdown``,
"Device discovery payload" and "Using Availability topics";
``sensor.mqtt.markdown``, ``binary_sensor.mqtt.markdown``,
``event.mqtt.markdown``; the stored versions read for this bridge).
:func:`schema_problems` checks a device-discovery payload against it, and
:func:`entity_available` decides an entity's availability from the retained
messages of its availability topics the way Home Assistant's ``availability``
list with ``availability_mode`` does.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any

# -- the documented configuration keys --------------------------------------------------
AVAILABILITY = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "payload_available", "payload_not_available",
}  # fmt: skip
COMMON = AVAILABILITY | {
    "device", "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "platform", "qos",
    "state_topic", "unique_id", "value_template", "device_class",
}  # fmt: skip


@dataclass(frozen=True)
class Platform:
    """What one platform's page lists: required keys and every allowed key."""

    required: frozenset[str]
    allowed: frozenset[str]


SCHEMA = {
    # "required: true" on the page, plus unique_id: "Required when used with device-based discovery"
    "sensor": Platform(
        frozenset({"platform", "state_topic", "unique_id"}),
        frozenset(COMMON | {"expire_after", "force_update", "last_reset_value_template",
                            "options", "suggested_display_precision", "state_class",
                            "unit_of_measurement"}),
    ),
    "binary_sensor": Platform(
        frozenset({"platform", "state_topic", "unique_id"}),
        frozenset(COMMON | {"expire_after", "force_update", "off_delay", "payload_off",
                            "payload_on"}),
    ),
    "event": Platform(
        frozenset({"platform", "state_topic", "event_types", "unique_id"}),
        frozenset(COMMON | {"event_types"}),
    ),
}  # fmt: skip
AVAILABILITY_ENTRY = Platform(
    frozenset({"topic"}), frozenset({"topic", "payload_available", "payload_not_available",
                                     "value_template"}),
)  # fmt: skip
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN = Platform(frozenset({"name"}), frozenset({"name", "sw_version", "support_url"}))
# Device discovery: device and origin are required at the root; shared options may join them.
ROOT_KEYS = {"device", "origin", "components", "availability", "command_topic", "state_topic",
             "qos", "encoding"}  # fmt: skip
STATE_CLASSES = {"measurement", "total", "total_increasing"}
AVAILABILITY_MODES = {"all", "any", "latest"}
SAFE_ID = re.compile(r"[a-zA-Z0-9_-]+")  # node_id / object_id of a discovery topic


def _keys(where: str, found: dict[str, Any], spec: Platform) -> list[str]:
    problems = [f"{where}: missing {k}" for k in sorted(spec.required - set(found))]
    return problems + [f"{where}: unknown key {k}" for k in sorted(set(found) - spec.allowed)]


def schema_problems(message: dict[str, Any]) -> list[str]:
    """Everything in a device-discovery payload that the documentation does not allow."""
    problems = [f"root: unknown key {k}" for k in sorted(set(message) - ROOT_KEYS)]
    problems += [
        f"root: missing {k}" for k in ("device", "origin", "components") if k not in message
    ]
    device = message.get("device", {})
    problems += [f"device: unknown key {k}" for k in sorted(set(device) - DEVICE_KEYS)]
    if not (device.get("identifiers") or device.get("connections")) or not device.get("name"):
        problems.append("device: needs identifiers (or connections) and a name")
    problems += _keys("origin", message.get("origin", {}), ORIGIN)
    components = message.get("components", {})
    if not components:
        problems.append("components: none")
    for key, config in components.items():
        problems += _component_problems(key, config)
    return problems


def _component_problems(key: str, config: dict[str, Any]) -> list[str]:
    where = f"components.{key}"
    spec = SCHEMA.get(config.get("platform", ""))
    if spec is None:
        return [f"{where}: unknown platform {config.get('platform')!r}"]
    problems = _keys(where, config, spec)
    if not SAFE_ID.fullmatch(key):
        problems.append(f"{where}: component id is not [a-zA-Z0-9_-]")
    if "options" in config:  # sensor.mqtt: enum only, never with state_class or a unit
        if config.get("device_class") != "enum" or not config["options"]:
            problems.append(f"{where}: options need device_class enum and must not be empty")
        if {"state_class", "unit_of_measurement"} & set(config):
            problems.append(f"{where}: options cannot go with state_class or a unit")
    if config.get("device_class") == "enum" and not config.get("options"):
        problems.append(f"{where}: an enum sensor needs options")
    if "state_class" in config and config["state_class"] not in STATE_CLASSES:
        problems.append(f"{where}: state_class {config['state_class']!r}")
    if config.get("platform") == "sensor" and config.get("entity_category", "diagnostic") != (
        "diagnostic"
    ):
        problems.append(f"{where}: a sensor's entity_category must be diagnostic")
    if "event_types" in config and not config["event_types"]:
        problems.append(f"{where}: event_types must not be empty")
    if config.get("availability_mode", "latest") not in AVAILABILITY_MODES:
        problems.append(f"{where}: availability_mode {config['availability_mode']!r}")
    if "availability" in config and "availability_topic" in config:
        problems.append(f"{where}: availability and availability_topic together")
    for i, entry in enumerate(config.get("availability", [])):
        problems += _keys(f"{where}.availability[{i}]", entry, AVAILABILITY_ENTRY)
    return problems


# -- availability as Home Assistant evaluates it ---------------------------------------------
def _rendered(entry: dict[str, Any], payload: bytes) -> str:
    """The availability template's result; only the bridge's two forms are understood."""
    template = entry.get("value_template")
    if template is None:
        return payload.decode()
    assert template == "{{ value_json.state }}", template
    return str(json.loads(payload)["state"])


def entity_available(config: dict[str, Any], retained: dict[str, bytes]) -> bool:
    """Whether an entity is available given the retained payload of each topic (none: absent).

    Home Assistant starts an entity with an availability list as unavailable; an
    entry without a message counts as not available; ``all`` needs every entry
    available, ``any`` one of them, ``latest`` is not used by the bridge.
    """
    mode = config.get("availability_mode", "latest")
    states = []
    for entry in config["availability"]:
        payload = retained.get(entry["topic"])
        if not payload:
            states.append(False)
            continue
        value = _rendered(entry, payload)
        states.append(value == entry.get("payload_available", "online"))
    assert mode in {"all", "any"} or len(states) == 1, mode
    return all(states) if mode in {"all", "latest"} else any(states)


# -- what a Home Assistant that connects now would get ---------------------------------------
def retained_snapshot(host: str, port: int, topic_filters: list[str]) -> dict[str, bytes]:
    """Every retained message under ``topic_filters``, as a client connecting now receives them.

    The broker handles one client's SUBSCRIBE packets in order and sends a
    subscription's retained messages right away; so once the retained marker of a
    second subscription (a topic outside the filters) comes back, the first
    subscription's retained messages have all arrived.
    """
    from imu_har.runtime.client import connect

    marker = f"test-marker/{uuid.uuid4().hex}"
    writer, reader = connect(host, port), connect(host, port)
    try:
        writer.publish(marker, b"marker", qos=1, retain=True).wait_for_publish(5)
        got: dict[str, bytes] = {}
        done = threading.Event()

        def on_message(_c: object, _u: object, msg: Any) -> None:
            if msg.topic == marker:
                done.set()
            elif msg.retain:
                got[msg.topic] = bytes(msg.payload)

        reader.on_message = on_message
        reader.subscribe([(f, 1) for f in topic_filters])
        reader.subscribe(marker, 1)
        assert done.wait(10), "the retained marker did not come back"
        writer.publish(marker, b"", qos=1, retain=True).wait_for_publish(5)
        return got
    finally:
        for client in (writer, reader):
            client.loop_stop()
            client.disconnect()
