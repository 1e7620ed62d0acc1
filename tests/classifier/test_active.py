"""The activated model survives a restart, and rollback to ``--model`` works (real broker).

Before, the classifier started from ``--model`` after every restart (``docker
compose restart``, ``har up`` after a crash, a reboot) and silently served the
demo model again; and in Compose rolling back to the shipped model
(``/app/models/default``, outside ``--model-root /models``) was refused. Each
"restart" here is ``build()`` again with the same settings, as ``main`` does.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from imu_har.protocol.messages import Prediction
from imu_har.protocol.model_spec import load_spec
from imu_har.runtime.client import Collector
from tests.support.classifier import (
    Artifacts,
    command,
    start_classifier,
    status_where,
    window_payloads,
)

pytestmark = [pytest.mark.broker, pytest.mark.tf]
ACTIVE = "active.json"  # the documented default of --active-file


@pytest.fixture()
def root(tmp_path: Path, artifacts: Artifacts) -> Path:
    """A model root holding both artifacts, as the trainer fills ``/models``."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(artifacts.first, models / "first")
    shutil.copytree(artifacts.second, models / "second")
    return models


def online(client, predicate) -> dict:  # type: ignore[no-untyped-def]
    """The first online status whose details satisfy ``predicate``."""
    return status_where(client, lambda s: s["state"] == "online" and predicate(s["details"]))


def served_version(client, artifacts: Artifacts) -> str:  # type: ignore[no-untyped-def]
    """The model version of a prediction for one window, sent now."""
    predictions = Collector(client, "har/+/prediction")
    topic, payload, _ = window_payloads(artifacts.windows[:1], devices=1)[0]
    client.publish(topic, payload, qos=1)
    got = predictions.wait_for(1, timeout=10)
    assert got, "no prediction"
    return Prediction.from_payload(got[0].payload).model_version


def test_an_activated_model_is_served_again_after_a_restart(
    broker, run_service, mqtt_client, artifacts: Artifacts, root: Path
) -> None:  # type: ignore[no-untyped-def]
    first, second = load_spec(root / "first"), load_spec(root / "second")
    running = start_classifier(broker, run_service, root / "first", model_root=root)
    reply = command(mqtt_client, {"action": "reload", "model": str(root / "second")})
    assert reply["ok"], reply
    record = json.loads((root / ACTIVE).read_text())
    assert record["path"] == str((root / "second").resolve())
    assert record["version"] == second.version
    assert not [p.name for p in root.iterdir() if p.name.endswith(".tmp")]  # renamed into place
    running.stop()

    running = start_classifier(broker, run_service, root / "first", model_root=root)
    status = online(mqtt_client, lambda d: d["model"]["version"] == second.version)
    assert status["details"]["active_file"]["start"] == "active_file"
    assert "bad_active_file" not in status["counters"]["rejected"]
    assert served_version(mqtt_client, artifacts) == second.version
    running.stop()

    # --ignore-active-file: --model, and the record stays for the next start
    start_classifier(broker, run_service, root / "first", model_root=root, ignore_active_file=True)
    status = online(mqtt_client, lambda d: d["model"]["version"] == first.version)
    assert status["details"]["active_file"]["start"] == "model"
    assert served_version(mqtt_client, artifacts) == first.version
    assert json.loads((root / ACTIVE).read_text())["version"] == second.version


def _hostile(case: str, root: Path, outside: Path) -> None:
    """Write the active file of ``case`` into ``root`` (``outside`` is a good artifact)."""
    version = load_spec(outside).version

    def record(path: str, version: str = version) -> None:
        (root / ACTIVE).write_text(json.dumps({"path": path, "version": version}))

    if case == "outside_root":
        record(str(outside))
    elif case == "dotdot":
        record(str(root / ".." / outside.name))
    elif case == "symlink_out":
        (root / "link").symlink_to(outside, target_is_directory=True)
        record(str(root / "link"))
    elif case == "garbage":
        (root / ACTIVE).write_bytes(b'\x00{"path": not json')
    elif case == "not_an_object":
        (root / ACTIVE).write_text(json.dumps([str(root / "second"), version]))
    elif case == "no_spec":
        (root / "empty").mkdir()
        record(str(root / "empty"))
    elif case == "other_version":
        record(str(root / "second"), "0" * 16)
    elif case == "file_symlink":  # the record itself points out of the root
        elsewhere = outside.parent / "record.json"
        elsewhere.write_text(json.dumps({"path": str(root / "second"), "version": version}))
        (root / ACTIVE).symlink_to(elsewhere)
    else:
        raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("outside_root", "outside_root"),
        ("dotdot", "outside_root"),
        ("symlink_out", "outside_root"),
        ("garbage", "bad_json"),
        ("not_an_object", "bad_json"),
        ("no_spec", "unloadable"),
        ("other_version", "version_mismatch"),
        ("file_symlink", "unreadable"),
    ],
)
def test_a_hostile_active_file_is_ignored_and_counted(
    broker, run_service, mqtt_client, artifacts: Artifacts, root: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, case: str, reason: str,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    outside = tmp_path / "elsewhere"
    shutil.copytree(artifacts.second, outside)  # loads fine: only where it is is wrong
    _hostile(case, root, outside)
    first = load_spec(root / "first")
    with caplog.at_level(logging.WARNING, logger="services.classifier.active"):
        start_classifier(broker, run_service, root / "first", model_root=root)
    status = online(mqtt_client, lambda d: d["model"]["version"] == first.version)
    assert status["counters"]["rejected"]["bad_active_file"] == 1
    active = status["details"]["active_file"]
    assert active["start"] == "model" and active["ignored"] == reason, active
    assert any(reason in r.getMessage() for r in caplog.records), caplog.text
    assert served_version(mqtt_client, artifacts) == first.version


def test_rollback_to_the_start_model_outside_the_root_and_nothing_else(
    broker, run_service, mqtt_client, artifacts: Artifacts, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Compose: --model /app/models/default --model-root /models."""
    shipped = tmp_path / "app" / "models" / "default"
    shutil.copytree(artifacts.first, shipped)
    neighbour = tmp_path / "app" / "models" / "other"  # beside the shipped model
    shutil.copytree(artifacts.second, neighbour)
    shutil.copytree(artifacts.second, shipped / "nested")  # inside it, but not it
    root = tmp_path / "models"
    shutil.copytree(artifacts.second, root / "mine")
    first, second = load_spec(shipped), load_spec(root / "mine")
    running = start_classifier(broker, run_service, shipped, model_root=root)

    reply = command(mqtt_client, {"action": "reload", "model": str(root / "mine")})
    assert reply["ok"] and reply["data"]["version"] == second.version, reply
    reply = command(mqtt_client, {"action": "reload", "model": str(shipped)})
    assert reply["ok"] and reply["data"]["version"] == first.version, reply
    for path in (neighbour, shipped / "nested", root / ".." / "app" / "models" / "other"):
        reply = command(mqtt_client, {"action": "reload", "model": str(path)})
        assert not reply["ok"] and "outside the allowed --model-root" in reply["error"], reply
    status = status_where(mqtt_client, lambda s: s["counters"]["events"].get("reload_refused"))
    assert status["counters"]["events"]["reload_refused"] == 3  # every refusal had its reply
    assert status["details"]["model"]["version"] == first.version
    assert json.loads((root / ACTIVE).read_text())["path"] == str(shipped.resolve())
    running.stop()

    # the record of the rollback names --model: a restart serves it, nothing is ignored
    start_classifier(broker, run_service, shipped, model_root=root)
    status = online(mqtt_client, lambda d: d["model"]["version"] == first.version)
    assert status["details"]["active_file"]["start"] == "active_file"
    assert "bad_active_file" not in status["counters"]["rejected"]
