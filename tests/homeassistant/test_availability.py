"""Availability end to end: a disconnected wearable, and the bridge killed with SIGKILL.

The bridge runs as a real subprocess (``python -m services.homeassistant``);
each entity's availability is then decided from what the broker holds retained,
the way Home Assistant reads an ``availability`` list with ``availability_mode``
(tests/support/homeassistant.py), for every entity of every wearable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from imu_har.protocol import topics
from imu_har.protocol.messages import DeviceStatus
from imu_har.runtime.client import Collector
from services.homeassistant.ids import node_id
from tests.support.homeassistant import entity_available, retained_snapshot

pytestmark = [pytest.mark.broker, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ROOT, PREFIX = "avail", "ha-avail"
DEVICES = ["wrist-1", "aa:bb:cc:dd:ee:01", "ankle.2"]


def entities(snapshot: dict[str, bytes]) -> dict[tuple[str, str], bool]:
    """``(device, entity key) -> available`` for every discovered entity."""
    out = {}
    for device in DEVICES:
        config = json.loads(
            snapshot[topics.HA_DISCOVERY.format(PREFIX, node=node_id(ROOT, device))]
        )
        for key, component in config["components"].items():
            out[(device, key)] = entity_available(component, snapshot)
    return out


def publish_status(client: Any, device: str, state: str) -> None:
    message = DeviceStatus(device=device, state=state, source="ble")  # type: ignore[arg-type]
    topic = topics.DEVICE_STATUS.format(ROOT, device=device)
    client.publish(topic, message.to_payload(), qos=1, retain=True).wait_for_publish(5)


def last_state(messages: list[Any]) -> str | None:
    return json.loads(messages[-1].payload)["state"] if messages else None


def test_disconnect_and_sigkill_make_every_wearable_unavailable(
    broker, mqtt_client, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    bridge_status = Collector(
        mqtt_client, topics.SERVICE_STATUS.format(ROOT, service="homeassistant")
    )
    links = Collector(mqtt_client, topics.HA_AVAILABILITY.subscription(ROOT))
    args = [
        sys.executable, "-m", "services.homeassistant", "--mqtt-port", str(broker.port),
        "--topic-root", ROOT, "--discovery-prefix", PREFIX, "--status-interval", "0.5",
        "--client-id", f"ha-kill-{uuid.uuid4().hex[:6]}",
    ]  # fmt: skip
    log = tmp_path / "bridge.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=out)
    try:
        assert (
            last_state(bridge_status.wait_for(30, predicate=lambda ms: last_state(ms) == "online"))
            == "online"
        ), log.read_text()
        for device in DEVICES:
            publish_status(mqtt_client, device, "streaming")

        def online(ms: list[Any]) -> bool:
            latest = {m.topic: m.payload for m in ms}
            return all(
                latest.get(topics.HA_AVAILABILITY.format(ROOT, device=d)) == b"online"
                for d in DEVICES
            )

        assert online(links.wait_for(20, predicate=online)), log.read_text()
        filters = [f"{PREFIX}/#", f"{ROOT}/#"]
        assert all(entities(retained_snapshot(broker.host, broker.port, filters)).values())

        # One wearable disconnects: its entities go unavailable, its link entity says so.
        publish_status(mqtt_client, DEVICES[0], "disconnected")
        gone = topics.HA_AVAILABILITY.format(ROOT, device=DEVICES[0])
        links.wait_for(
            20, predicate=lambda ms: [m.payload for m in ms if m.topic == gone][-1] == b"offline"
        )
        seen = entities(retained_snapshot(broker.host, broker.port, filters))
        assert {k for k, up in seen.items() if not up} == {
            (DEVICES[0], key) for device, key in seen if device == DEVICES[0] and key != "link"
        }

        # The bridge dies without a word: its Last Will makes every entity unavailable.
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        bridge_status.wait_for(20, predicate=lambda ms: last_state(ms) == "offline")
        seen = entities(retained_snapshot(broker.host, broker.port, filters))
        assert len(seen) == 9 * len(DEVICES) and not any(seen.values())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
