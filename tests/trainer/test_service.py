"""``har trainer`` on a real broker: a job from recorded sessions to an artifact, and cancel.

The sessions are written by the recorder's own core from the simulator
(tests.support.trainer); the models are tiny (two epochs of a 4-unit LSTM):
these tests check the service, not the accuracy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from imu_har.protocol import topics
from imu_har.runtime.client import Collector
from services.trainer.app import build
from services.trainer.handler import TrainerHandler
from tests.support.trainer import TINY, TrainerRequester, record_sessions, trainer_settings

pytestmark = [pytest.mark.broker, pytest.mark.tf, pytest.mark.slow]
TWO_SUBJECTS = [
    ("w1", "Squat", "ann"),
    ("w2", "Squat", "bob"),
    ("w1", "Jumping", "ann"),
    ("w2", "Jumping", "bob"),
]
STATUS = topics.TRAINER_STATUS.format("har")
PHASE_ORDER = ["starting", "loading", "cv", "fit", "export", "done"]


def statuses(collector: Collector) -> list[dict[str, Any]]:
    """Every trainer status received so far, parsed."""
    return [json.loads(m.payload) for m in collector.wait_for(0, timeout=0) if m.payload]


def job_state(collector: Collector, job: str, states: set[str], timeout: float) -> dict[str, Any]:
    """The first status of ``job`` in one of ``states`` (waits up to ``timeout``)."""

    def reached(messages: list) -> bool:
        return any(_of(m, job, states) for m in messages)

    found = [
        m for m in collector.wait_for(timeout=timeout, predicate=reached) if _of(m, job, states)
    ]
    assert found, f"job {job} never reached {states}; last: {statuses(collector)[-1:]}"
    return dict(json.loads(found[0].payload)["job"])


def _of(message: Any, job: str, states: set[str]) -> bool:
    status = json.loads(message.payload) if message.payload else {}
    current = status.get("job") or {}
    return current.get("job") == job and (
        current.get("state") in states or current.get("phase") in states
    )


def test_a_job_trains_recorded_sessions_into_an_artifact(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    record_sessions(tmp_path / "data", TWO_SUBJECTS)
    settings = trainer_settings(broker, tmp_path)
    run_service(*build(settings))
    collector = Collector(mqtt_client, STATUS)
    requester = TrainerRequester(mqtt_client)

    reply = requester.send({"action": "train", "name": "tiny", "params": TINY})
    assert reply["ok"], reply
    job = reply["data"]["job"]
    assert reply["data"]["grouping"] == "subject" and reply["data"]["folds"] == 2
    done = job_state(collector, job, {"done", "failed"}, timeout=240)
    assert done["state"] == "done", done

    seen = [s["job"] for s in statuses(collector) if (s.get("job") or {}).get("job") == job]
    phases = [
        p for i, p in enumerate(s["phase"] for s in seen) if i == 0 or seen[i - 1]["phase"] != p
    ]
    assert [PHASE_ORDER.index(p) for p in phases] == sorted(PHASE_ORDER.index(p) for p in phases)
    assert {"cv", "fit", "done"} <= set(phases), phases
    cv_steps = [(s["fold"], s["epoch"] or 0) for s in seen if s["phase"] == "cv" and s["fold"]]
    assert cv_steps == sorted(cv_steps) and cv_steps, cv_steps  # folds and epochs in order
    assert all(s["elapsed"] >= 0 for s in seen)

    result = done["result"]
    artifact = Path(result["artifact"])
    assert artifact.parent == settings.models_dir and artifact.name == f"tiny-{result['version']}"
    spec = json.loads((artifact / "spec.json").read_text())
    assert spec["version"] == result["version"] and sorted(spec["labels"]) == ["Jumping", "Squat"]
    assert spec["metrics"]["score"]["method"] == "grouped validation by subject, 2 folds"
    assert [f["test_groups"] for f in result["cv"]["folds"]] == [["ann"], ["bob"]]
    assert len(result["cv"]["confusion_matrix"]) == 2 and result["score"]["accuracy"] >= 0
    assert sorted(p.name for p in settings.models_dir.iterdir()) == [artifact.name]  # no partial

    listed = requester.send({"action": "list"})["data"]
    assert [j["job"] for j in listed["jobs"]] == [job] and listed["jobs"][0]["state"] == "done"
    assert [m["version"] for m in listed["models"]] == [result["version"]]
    assert listed["models"][0]["score"]["accuracy"] == result["score"]["accuracy"]


def test_cancel_ends_the_process_and_keeps_nothing(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    record_sessions(tmp_path / "data", TWO_SUBJECTS)
    service = run_service(*build(trainer_settings(broker, tmp_path)))
    handler = service.handler
    assert isinstance(handler, TrainerHandler)
    collector = Collector(mqtt_client, STATUS)
    requester = TrainerRequester(mqtt_client)
    slow = TINY | {"epochs": 1000}
    job = requester.send({"action": "train", "name": "slow", "params": slow})["data"]["job"]
    assert handler.child is not None
    pid = handler.child.pid
    training = job_state(collector, job, {"cv"}, timeout=120)
    assert training["state"] == "running"
    job_state_epoch = _wait_epoch(collector, job)
    assert job_state_epoch["eta"] is None or job_state_epoch["eta"] >= 0

    busy = requester.send({"action": "train", "name": "other", "params": TINY})
    assert not busy["ok"] and "one job at a time" in busy["error"], busy

    cancelled = requester.send({"action": "cancel", "job": job}, timeout=60)
    assert cancelled["ok"] and cancelled["data"]["state"] == "cancelled", cancelled
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone (and reaped: not even a zombie)
    assert list((tmp_path / "models").iterdir()) == []  # no partial artifact, no model
    assert job_state(collector, job, {"cancelled"}, timeout=10)["state"] == "cancelled"
    again = requester.send({"action": "cancel", "job": job})
    assert not again["ok"] and "not running" in again["error"]
    assert service.runtime.counters.get("busy") == 1


def _wait_epoch(collector: Collector, job: str) -> dict[str, Any]:
    def training(messages: list) -> bool:
        return any(_epoch(m, job) for m in messages)

    found = [m for m in collector.wait_for(timeout=120, predicate=training) if _epoch(m, job)]
    assert found, "no epoch was reported"
    return dict(json.loads(found[-1].payload)["job"])


def _epoch(message: Any, job: str) -> bool:
    current = (json.loads(message.payload) if message.payload else {}).get("job") or {}
    return current.get("job") == job and bool(current.get("epoch"))
