"""Hot reload over a real Mosquitto: by command under load, and from a watched directory."""

from __future__ import annotations

import shutil
import threading
import time
from collections import defaultdict

import pytest

from imu_har.protocol.messages import Prediction
from imu_har.protocol.model_spec import ModelSpec, load_spec
from imu_har.runtime.client import Collector
from tests.support.classifier import (
    Artifacts,
    command,
    start_classifier,
    status_where,
    window_payloads,
)

pytestmark = [pytest.mark.broker, pytest.mark.tf]


def test_reload_swaps_models_under_load_without_losing_windows(
    broker, run_service, mqtt_client, artifacts: Artifacts
) -> None:  # type: ignore[no-untyped-def]
    first, second = load_spec(artifacts.first), load_spec(artifacts.second)
    assert first.version != second.version
    start_classifier(broker, run_service, artifacts.first)
    predictions = Collector(mqtt_client, "har/+/prediction")
    specs = Collector(mqtt_client, "har/model/spec")
    x = artifacts.windows
    sent = window_payloads(x, devices=4) + window_payloads(x, devices=4, seq0=1000)
    halfway = threading.Event()

    def publish() -> None:
        for i, (topic, payload, _) in enumerate(sent):
            mqtt_client.publish(topic, payload, qos=1)
            if i == len(sent) // 4:
                halfway.set()
            time.sleep(0.002)  # a steady ~400 windows/s while the model loads

    publisher = threading.Thread(target=publish)
    publisher.start()
    assert halfway.wait(10)
    reply = command(mqtt_client, {"action": "reload", "model": str(artifacts.second)})
    publisher.join()
    assert reply["ok"], reply
    assert reply["data"]["version"] == second.version
    got = predictions.wait_for(len(sent), timeout=30)
    keys = [
        (p.device, p.window_seq) for p in map(Prediction.from_payload, (m.payload for m in got))
    ]
    assert len(keys) == len(sent) and set(keys) == {(w.device, w.seq) for _, _, w in sent}
    versions: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for m in got:
        p = Prediction.from_payload(m.payload)
        versions[p.device].append((p.window_seq, p.model_version))
    served = {v for per_device in versions.values() for _, v in per_device}
    assert served == {first.version, second.version}  # the swap happened mid-stream
    for per_device in versions.values():  # per device: old model, then the new one, never back
        order = [v for _, v in sorted(per_device)]
        switch = order.index(second.version)
        assert set(order[:switch]) <= {first.version} and set(order[switch:]) == {second.version}
    spec_now = specs.wait_for(
        timeout=5, predicate=lambda ms: ModelSpec.from_payload(ms[-1].payload) == second
    )
    assert ModelSpec.from_payload(spec_now[-1].payload) == second
    status = status_where(mqtt_client, lambda s: s["details"]["model"]["version"] == second.version)
    assert status["counters"]["events"]["reloads"] == 1


def test_watched_directory_swaps_in_new_artifacts_and_refuses_bad_ones(
    broker, run_service, mqtt_client, artifacts: Artifacts, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    watch = tmp_path / "models"
    watch.mkdir()
    shutil.copytree(artifacts.first, watch / "a")
    start_classifier(broker, run_service, None, watch_dir=watch, watch_interval=0.1)
    first, second = load_spec(artifacts.first), load_spec(artifacts.second)
    status_where(mqtt_client, lambda s: s["details"]["model"]["version"] == first.version)
    shutil.copytree(artifacts.second, watch / ".incoming")
    (watch / ".incoming").rename(watch / "b")  # appears complete, at once
    status_where(mqtt_client, lambda s: s["details"]["model"]["version"] == second.version)
    time.sleep(0.05)  # a strictly newer file time than "b"
    shutil.copytree(artifacts.first, watch / "c")
    (watch / "c" / "model.onnx").write_bytes(b"not onnx")
    (watch / "c" / "model.tflite").write_bytes(b"not tflite")
    (watch / "c" / "model.keras").write_bytes(b"not keras")
    status = status_where(
        mqtt_client, lambda s: s["counters"]["events"].get("reload_refused", 0) >= 1
    )
    assert status["details"]["model"]["version"] == second.version
    assert any("refused model" in line and "/c" in line for line in status["errors"])
    time.sleep(0.5)  # several more scans: the refused artifact is not retried
    status = status_where(mqtt_client, lambda s: s["details"]["model"]["version"] == second.version)
    assert status["counters"]["events"]["reload_refused"] == 1
    predictions = Collector(mqtt_client, "har/+/prediction")
    _, payload, _ = window_payloads(artifacts.windows[:1], devices=1)[0]
    mqtt_client.publish("har/dev0/window", payload, qos=1)
    got = predictions.wait_for(1, timeout=10)
    assert Prediction.from_payload(got[0].payload).model_version == second.version


@pytest.mark.parametrize("with_root", [True, False], ids=["model_root", "no_model_root"])
def test_reload_outside_the_allowed_directory_is_refused(
    broker, run_service, mqtt_client, artifacts: Artifacts, tmp_path, with_root: bool
) -> None:  # type: ignore[no-untyped-def]
    """Outside --model-root; without one (``har up`` sets none) outside the served model's
    directory: a reload must not name any path on the machine."""
    outside = tmp_path / "elsewhere"
    shutil.copytree(artifacts.second, outside)
    root = {"model_root": artifacts.first.parent} if with_root else {}
    start_classifier(broker, run_service, artifacts.first, **root)
    for path in (str(outside), str(artifacts.first.parent / ".." / outside.name)):
        reply = command(mqtt_client, {"action": "reload", "model": path})
        assert not reply["ok"] and "outside the allowed --model-root" in reply["error"]
    reply = command(mqtt_client, {"action": "reload", "model": str(artifacts.second)})
    assert reply["ok"] and reply["data"]["version"] == load_spec(artifacts.second).version


def test_tensorflow_fallback_only_when_allowed(
    broker, run_service, mqtt_client, artifacts: Artifacts, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A directory without ONNX/LiteRT export used to load TensorFlow silently (+620 MB)."""
    keras_only = tmp_path / "keras_only"
    shutil.copytree(artifacts.second, keras_only)
    (keras_only / "model.onnx").unlink()
    (keras_only / "model.tflite").unlink()
    reload = {"action": "reload", "model": str(keras_only)}
    running = start_classifier(broker, run_service, artifacts.first, model_root=tmp_path)
    reply = command(mqtt_client, reload)
    assert not reply["ok"] and "TensorFlow fallback is off" in reply["error"], reply
    status = status_where(mqtt_client, lambda s: s["counters"]["events"].get("reload_refused"))
    assert status["details"]["model"]["version"] == load_spec(artifacts.first).version
    running.stop()
    start_classifier(
        broker, run_service, artifacts.first, model_root=tmp_path, allow_tensorflow=True
    )
    reply = command(mqtt_client, reload)
    assert reply["ok"] and reply["data"]["backend"] == "tensorflow", reply
