"""``har up --homeassistant``: the bridge starts under the launcher, with its own broker account.

The launcher's private Mosquitto gives every service the deployment's ACL
(imu_har/ops/accounts.py): the bridge must read the simulated wearables' statuses and
publish their availability with exactly the rights of its ``homeassistant``
account. An anonymous client (it may read ``har/#``) watches.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from imu_har.ops.supervisor import SERVICES, build_parser, plan
from imu_har.protocol import topics
from imu_har.runtime.client import Collector, connect
from tests.support.har_up import start_har_up

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def test_har_up_starts_the_bridge_and_it_serves_the_wearables(tmp_path: Path) -> None:
    args = ["--homeassistant", "--devices", "2", "--data-dir", str(tmp_path / "data")]
    args += [f"--no-{name}" for name in SERVICES if name != "gateway"]  # the wearables only
    proc, out = start_har_up(args, tmp_path)  # its own process group, stopped as a whole
    client = None
    try:
        port = int(out.wait_for("private Mosquitto on", 20).rsplit(":", 1)[1])
        out.wait_for("homeassistant online", 60)
        client = connect("127.0.0.1", port)  # anonymous: reads har/#
        statuses = Collector(client, topics.DEVICE_STATUS.subscription("har"))
        availability = Collector(client, topics.HA_AVAILABILITY.subscription("har"))

        def devices(ms: list[Any]) -> set[str]:  # har/+/status: also har/recorder/status...
            return {
                json.loads(m.payload)["device"]
                for m in ms
                if m.payload and m.topic.split("/")[1] not in topics.RESERVED_NAMES
            }

        wearables = devices(statuses.wait_for(20, predicate=lambda ms: len(devices(ms)) == 2))
        wanted = {topics.HA_AVAILABILITY.format("har", device=d) for d in wearables}

        def available(ms: list[Any]) -> bool:
            return wanted <= {m.topic for m in ms if m.payload == b"online"}

        assert available(availability.wait_for(30, predicate=available)), "\n".join(out.lines[-30:])
    finally:
        if client is not None:
            client.loop_stop()
            client.disconnect()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_the_bridge_runs_only_when_asked_for_with_its_extra_flags() -> None:
    parser = build_parser()
    assert "homeassistant" not in [s.name for s in plan(parser.parse_args([]), None)]
    args = parser.parse_args(["--homeassistant", "--homeassistant-args", "--max-state-rate 0.5"])
    specs = {s.name: s.args for s in plan(args, None)}
    assert specs["homeassistant"] == ["--max-state-rate", "0.5"]
    assert list(specs).index("recorder") < list(specs).index("homeassistant")
