"""Every train command the trainer refuses, over a real broker; it keeps serving.

Each refusal is answered with ``ok: false`` and a reason a person can act on,
counted under its reason slug, and starts no process (so these tests need no
TensorFlow).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imu_har.protocol import topics
from imu_har.runtime.client import Collector
from services.trainer.app import build
from services.trainer.handler import TrainerHandler
from tests.support.trainer import (
    TINY,
    TrainerRequester,
    edit_manifest,
    record_sessions,
    trainer_settings,
)

pytestmark = pytest.mark.broker
SESSIONS = [
    ("w1", "Squat", "ann"),
    ("w2", "Squat", "bob"),
    ("w1", "Jumping", "ann"),
    ("w2", "Jumping", "bob"),
    ("w3", "Lunge", "ann"),  # recorded by one subject only
]


@pytest.fixture()
def trainer(broker, run_service, mqtt_client, tmp_path: Path) -> dict[str, Any]:
    ids = record_sessions(tmp_path / "data", SESSIONS, seconds=3.0)
    service = run_service(*build(trainer_settings(broker, tmp_path)))
    return {"ids": ids, "service": service, "requester": TrainerRequester(mqtt_client)}


def refused(trainer: dict[str, Any], command: dict[str, Any] | bytes, reason: str) -> str:
    """Send ``command``; it must be refused and counted under ``reason``. The error text."""
    counters = trainer["service"].runtime.counters
    before = counters.get(reason)
    reply = trainer["requester"].send(command)
    assert not reply["ok"], reply
    assert counters.get(reason) == before + 1, (reason, reply)
    handler = trainer["service"].handler
    assert isinstance(handler, TrainerHandler) and handler.child is None  # nothing started
    return str(reply["error"])


def train(**fields: Any) -> dict[str, Any]:
    return {"action": "train", "name": "m", "params": TINY} | fields


def test_unknown_excluded_and_unmatched_sessions(trainer, tmp_path: Path) -> None:
    ids = trainer["ids"]
    error = refused(
        trainer, train(sessions=[ids[0], "20990101T000000Z-x-000000"]), "unknown_session"
    )
    assert "20990101T000000Z-x-000000" in error
    edit_manifest(tmp_path / "data", ids[1], excluded=True)
    assert ids[1] in refused(trainer, train(sessions=ids[:2]), "excluded_session")
    refused(trainer, train(filter={"labels": ["Pushup"]}), "no_sessions")
    edit_manifest(tmp_path / "data", ids[0], deleting=True)  # being deleted: unknown
    refused(trainer, train(sessions=[ids[0]]), "unknown_session")


def test_a_label_in_one_group_too_little_data_and_mismatched_channels(
    trainer, tmp_path: Path
) -> None:
    ids = trainer["ids"]
    error = refused(trainer, train(), "too_few_groups")  # Lunge: only ann recorded it
    assert "Lunge" in error and "subject" in error
    refused(trainer, train(sessions=ids[:2]), "too_few_labels")
    four = ids[:4]
    error = refused(trainer, train(sessions=four, params=TINY | {"window": 160}), "too_little_data")
    assert "too little data" in error
    edit_manifest(tmp_path / "data", ids[3], channels=["acc_x", "acc_y", "acc_z"])
    assert ids[3] in refused(trainer, train(sessions=four), "channels_mismatch")


@pytest.mark.parametrize(
    "name", ["../x", "a/b", ".hidden", "x\n", "x\x00y", "a b", "", "x" * 65, "..", "~root"]
)
def test_names_that_are_not_one_safe_path_component(trainer, name: str) -> None:
    assert "name" in refused(trainer, train(name=name), "bad_command")


def test_hostile_commands_are_refused_and_counted(trainer, mqtt_client) -> None:
    ids = trainer["ids"]
    refused(trainer, train(filter={"labels": [f"l{i}" for i in range(1001)]}), "bad_command")
    refused(trainer, train(sessions=["../../etc/passwd"]), "bad_command")
    refused(trainer, train(filter={"devices": ["har/#"]}), "bad_command")
    refused(trainer, train(sessions=ids[:4], filter={"labels": ["Squat"]}), "bad_command")
    refused(trainer, train(params={"epochs": 10**9}), "bad_params")
    refused(trainer, train(params={"rm -rf": 1}), "bad_params")
    refused(trainer, train(params={"dropout": 1.5}), "bad_params")
    refused(trainer, train(params={"units": [1, 2]}), "bad_command")
    refused(trainer, train(cv=1), "bad_command")
    refused(trainer, train(sessions=ids[:4], cv=3), "bad_cv")
    refused(trainer, {"action": "cancel", "job": "j20990101T000000Z-abcdef"}, "unknown_job")
    refused(trainer, {"action": "cancel", "job": "../x"}, "bad_command")
    refused(trainer, {"action": "rm"}, "bad_command")
    refused(trainer, b"{not json", "bad_command")
    refused(trainer, b"x" * 20_000, "too_large")

    # A response topic that cannot be published to: the reply goes to the fallback topic.
    fallback = Collector(mqtt_client, topics.TRAINER_REPLY.format("har"))
    requester = trainer["requester"]
    requester.post({"action": "status"}, response_topic="har/#")
    got = fallback.wait_for(1, timeout=10)
    assert got and json.loads(got[0].payload)["ok"]
    assert trainer["service"].runtime.counters.get("bad_response_topic") == 1

    status = requester.send({"action": "status"})  # still serving
    assert status["ok"] and status["data"] == {"busy": False, "job": None}
    listed = requester.send({"action": "list"})
    assert listed["ok"] and listed["data"]["jobs"] == []
