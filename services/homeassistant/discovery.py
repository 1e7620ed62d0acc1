"""The Home Assistant device-discovery payload of one wearable.

One retained message per wearable on ``<prefix>/device/<node id>/config``
(Home Assistant's "device-based discovery": ``device``, ``origin`` and the
entities under ``components``), following the MQTT integration page and the
sensor, binary_sensor and event platform pages of home-assistant.io
(docs/homeassistant.md cites them). Every entity reads the wearable's one JSON
state topic through a ``value_template``, except the event entity, which has
its own topic (Home Assistant fires an event per message there).

Availability is the bridge's own status (its Last Will) *and* the wearable's
link (``availability_mode: all``), so an entity is unavailable when the
wearable disconnects or the bridge dies. The link entity itself follows the
bridge only: it says ``disconnected`` rather than going unavailable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from imu_har import __version__
from imu_har.protocol.workout import RepEvent, SetEvent
from services.homeassistant.ids import unique_id

MANUFACTURER = "imu-har"
ORIGIN = {"name": "imu-har", "sw_version": __version__}
LINK_STATES = ("scanning", "connecting", "connected", "streaming", "disconnected", "error")
FORMS = ("correct", "incorrect", "unknown")
EVENT_TYPES = ("repetition", "set")
ALWAYS_OFFERED = ("rest", "unknown")  # exercise values besides the model's labels


@dataclass(frozen=True)
class Entity:
    """One entity of a wearable: its key (in ``components`` and the unique id) and config."""

    key: str
    platform: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    own_topic: bool = False  # reads the event topic, not the state topic
    bridge_only: bool = False  # available whenever the bridge is (the link itself)


def _value(field_name: str) -> dict[str, str]:
    return {"value_template": "{{ value_json." + field_name + " }}"}


def _count(field_name: str, unit: str, total: bool) -> dict[str, Any]:
    state_class = "total_increasing" if total else "measurement"
    return {**_value(field_name), "unit_of_measurement": unit, "state_class": state_class}


ENTITIES = (
    Entity("exercise", "sensor", "Exercise", {**_value("exercise"), "device_class": "enum",
           "icon": "mdi:dumbbell"}),  # options: the model's labels, filled in per payload
    Entity("confidence", "sensor", "Confidence", {**_value("confidence"),
           "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:percent"}),
    Entity("reps", "sensor", "Repetitions", {**_count("reps", "reps", False),
           "icon": "mdi:counter"}),
    Entity("reps_today", "sensor", "Repetitions today", {**_count("reps_today", "reps", True),
           "icon": "mdi:counter"}),
    Entity("sets_today", "sensor", "Sets today", {**_count("sets_today", "sets", True),
           "icon": "mdi:format-list-numbered"}),
    Entity("form", "sensor", "Last repetition form", {**_value("form"), "device_class": "enum",
           "options": list(FORMS), "icon": "mdi:check-decagram"}),
    Entity("in_set", "binary_sensor", "In a set", {"device_class": "running",
           "value_template": "{{ 'ON' if value_json.in_set else 'OFF' }}",
           "icon": "mdi:weight-lifter"}),
    Entity("link", "sensor", "Link", {**_value("link"), "device_class": "enum",
           "options": list(LINK_STATES), "entity_category": "diagnostic",
           "icon": "mdi:bluetooth-connect"}, bridge_only=True),
    Entity("workout", "event", "Workout", {"event_types": list(EVENT_TYPES),
           "icon": "mdi:arm-flex"}, own_topic=True),
)  # fmt: skip


@dataclass(frozen=True)
class Topics:
    """The topics one wearable's entities read."""

    state: str
    event: str
    availability: str
    bridge: str  # the bridge's retained service status, ``offline`` by its Last Will


def availability(topics: Topics, bridge_only: bool) -> dict[str, Any]:
    """The ``availability`` list of an entity: bridge status (JSON) and, usually, the link."""
    bridge = {"topic": topics.bridge, "value_template": "{{ value_json.state }}"}
    if bridge_only:
        return {"availability": [bridge]}
    return {"availability": [bridge, {"topic": topics.availability}], "availability_mode": "all"}


def payload(
    node: str, device: str, model: str, options: tuple[str, ...], topics: Topics
) -> dict[str, Any]:
    """The discovery payload of wearable ``device`` (``node``: its id, see ids.node_id)."""
    components: dict[str, Any] = {}
    for entity in ENTITIES:
        config: dict[str, Any] = {
            "platform": entity.platform,
            "unique_id": unique_id(node, entity.key),
            "name": entity.name,
            "state_topic": topics.event if entity.own_topic else topics.state,
            **entity.config,
            **availability(topics, entity.bridge_only),
        }
        if entity.key == "exercise":
            config["options"] = list(options)
        components[entity.key] = config
    return {
        "device": {
            "identifiers": [node],
            "name": device,
            "manufacturer": MANUFACTURER,
            "model": model,
            "sw_version": __version__,
        },
        "origin": dict(ORIGIN),
        "components": components,
    }


def encode(message: dict[str, Any]) -> bytes:
    """Compact JSON bytes (discovery payloads, state, events)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def exercise_options(labels: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The exercise sensor's options: the model's labels, then ``rest`` and ``unknown``."""
    return tuple(dict.fromkeys([*labels, *ALWAYS_OFFERED]))


def repetition_event(rep: RepEvent) -> dict[str, Any]:
    """The event entity's message for one repetition (extra keys become its attributes)."""
    return {
        "event_type": "repetition",
        "exercise": rep.exercise,
        "set": rep.set,
        "rep": rep.rep,
        "form": rep.form,
        "confidence": round(rep.confidence, 3),
    }


def set_event(done: SetEvent) -> dict[str, Any]:
    """The event entity's message for one finished set."""
    return {
        "event_type": "set",
        "exercise": done.exercise,
        "set": done.set,
        "reps": done.reps,
        "incorrect": done.incorrect,
        "seconds": round(done.end - done.start, 1),
    }
