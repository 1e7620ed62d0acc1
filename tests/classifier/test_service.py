"""The classifier over a real Mosquitto with real tiny models from the training code."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from imu_har.protocol.codec import DEFAULT_CHANNELS, Window, encode_window
from imu_har.protocol.messages import Prediction
from imu_har.protocol.model_spec import ModelSpec, load_spec
from imu_har.runtime.client import Collector, connect
from tests.support.classifier import (
    RATE,
    Artifacts,
    command,
    expected_smoothing,
    offline_probabilities,
    start_classifier,
    status_where,
    window_payloads,
)

pytestmark = [pytest.mark.broker, pytest.mark.tf]


@pytest.mark.parametrize("backend", ["onnx", "litert"])
def test_predictions_match_offline_evaluation(
    broker, run_service, mqtt_client, artifacts: Artifacts, backend: str
) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(artifacts.first)
    start_classifier(broker, run_service, artifacts.first, backend=backend, smooth_k=4)
    predictions = Collector(mqtt_client, "har/+/prediction")
    sent = window_payloads(artifacts.windows, devices=3)
    for topic, payload, _ in sent:
        mqtt_client.publish(topic, payload, qos=1)
    got = predictions.wait_for(len(sent), timeout=30)
    assert len(got) == len(sent)
    offline = offline_probabilities(artifacts.first, artifacts.windows)
    index = {(w.device, w.seq): i for i, (_, _, w) in enumerate(sent)}
    by_key = {}
    for message in got:
        p = Prediction.from_payload(message.payload)
        assert message.topic == f"har/{p.device}/prediction"
        i = index.pop((p.device, p.window_seq))  # each window exactly once
        window = sent[i][2]
        served = np.array([p.probabilities[label] for label in spec.labels])
        np.testing.assert_allclose(served, offline[i], atol=1e-5)
        best = spec.labels[int(np.argmax(offline[i]))]
        assert spec.labels[int(np.argmax(served))] == best
        assert p.label == (best if offline[i].max() >= 0.5 else "unknown")
        assert p.confidence == pytest.approx(float(offline[i].max()), abs=1e-5)
        assert (p.window_start, p.window_end) == (window.start, window.end)
        assert p.source_time == window.source_time
        assert (p.model, p.model_version) == (spec.name, spec.version)
        assert p.latency_ms >= 0
        by_key[(p.device, p.window_seq)] = (served, p.smoothed_label)
    assert not index
    expected = expected_smoothing(
        {k: v[0] for k, v in by_key.items()}, spec.labels, 4, "majority", 0.5
    )
    assert {k: v[1] for k, v in by_key.items()} == expected


def test_spec_retained_and_status_show_model(broker, run_service, artifacts: Artifacts) -> None:  # type: ignore[no-untyped-def]
    start_classifier(broker, run_service, artifacts.first, backend="litert")
    # The spec goes out once the service is connected: a client subscribed before that gets
    # it live (retain flag clear), so "late" subscribes only after an early one has seen it.
    early = connect(broker.host, broker.port)
    try:
        assert Collector(early, "har/model/spec").wait_for(1)
    finally:
        early.disconnect()
    late = connect(broker.host, broker.port)  # subscribes after the fact: retained messages
    try:
        spec_msg = Collector(late, "har/model/spec").wait_for(1)
        assert spec_msg and spec_msg[0].retain
        assert ModelSpec.from_payload(spec_msg[0].payload) == load_spec(artifacts.first)
        status = status_where(late, lambda s: s["state"] == "online")
        details = status["details"]
        assert details["backend"] == "litert"
        assert details["model"]["version"] == load_spec(artifacts.first).version
        reply = command(late, {"action": "status"})
        assert reply["ok"] and reply["data"]["model"]["name"] == "tiny-0"
    finally:
        late.disconnect()


def _nan_window(window: Window) -> bytes:
    payload = bytearray(encode_window(window))
    struct.pack_into("<f", payload, len(payload) - 4, float("nan"))
    return bytes(payload)


def test_malformed_and_mismatched_windows_are_rejected_and_counted(
    broker, run_service, mqtt_client, artifacts: Artifacts
) -> None:  # type: ignore[no-untyped-def]
    start_classifier(broker, run_service, artifacts.first, backend="onnx")
    predictions = Collector(mqtt_client, "har/+/prediction")
    good = Window("good", 0, 10.0, 10.38, RATE, artifacts.windows[0], 10.5)
    x30 = np.zeros((30, 9), np.float32)
    bad = {
        "bad_version": b"garbage",
        "truncated": encode_window(good)[:-5],
        "length_mismatch": encode_window(Window("w", 0, 1.0, 1.58, RATE, x30)),
        "rate_mismatch": encode_window(Window("w", 0, 1.0, 1.76, 25.0, artifacts.windows[0])),
        "channel_mismatch": encode_window(
            Window(
                "w",
                0,
                1.0,
                1.38,
                RATE,
                artifacts.windows[0][:, :3],
                0.0,
                DEFAULT_CHANNELS[:3],
                ("g",) * 3,
            )
        ),
        "not_finite": _nan_window(Window("w", 0, 1.0, 1.38, RATE, artifacts.windows[0])),
        "device_mismatch": encode_window(Window("other", 0, 1.0, 1.38, RATE, artifacts.windows[0])),
    }
    for payload in bad.values():
        mqtt_client.publish("har/w/window", payload, qos=1)
    mqtt_client.publish("har/classifier/cmd", b"{not json", qos=1)
    mqtt_client.publish("har/good/window", encode_window(good), qos=1)
    got = predictions.wait_for(1, timeout=10)
    assert [Prediction.from_payload(m.payload).device for m in got] == ["good"]
    status = status_where(
        mqtt_client,
        lambda s: all(s["counters"]["rejected"].get(r, 0) >= 1 for r in [*bad, "bad_json"]),
    )
    rejected = status["counters"]["rejected"]
    assert {r: rejected[r] for r in bad} == dict.fromkeys(bad, 1)
    assert len(predictions.wait_for(2, timeout=0.5)) == 1  # nothing else was classified


def test_bad_artifacts_are_refused_and_old_model_keeps_serving(
    broker, run_service, mqtt_client, artifacts: Artifacts, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import shutil

    # the bad artifacts lie in tmp_path: reloads are confined to a root (issue 12)
    start_classifier(broker, run_service, artifacts.first, model_root=tmp_path)
    version = load_spec(artifacts.first).version
    wrong_labels = tmp_path / "wrong_labels"
    shutil.copytree(artifacts.first, wrong_labels)
    spec = json.loads((wrong_labels / "spec.json").read_text())
    spec["labels"] = spec["labels"][:-1]  # the model still outputs one more class
    (wrong_labels / "spec.json").write_text(json.dumps(spec))
    broken_spec = tmp_path / "broken_spec"
    shutil.copytree(artifacts.first, broken_spec)
    (broken_spec / "spec.json").write_text("{")
    cases = {
        str(tmp_path / "missing"): "not a directory",
        str(tmp_path): "not a model artifact",
        str(wrong_labels): "output shape",
        str(broken_spec): "not a valid spec",
    }
    for path, message in cases.items():
        reply = command(mqtt_client, {"action": "reload", "model": path})
        assert not reply["ok"] and message in reply["error"], reply
    reply = command(mqtt_client, {"action": "reload"})
    assert not reply["ok"] and "needs 'model'" in reply["error"]
    predictions = Collector(mqtt_client, "har/+/prediction")
    _, payload, _ = window_payloads(artifacts.windows[:1], devices=1)[0]
    mqtt_client.publish("har/dev0/window", payload, qos=1)
    got = predictions.wait_for(1, timeout=10)
    assert got and Prediction.from_payload(got[0].payload).model_version == version
    status = status_where(mqtt_client, lambda s: s["counters"]["events"].get("reload_refused") == 5)
    assert status["details"]["model"]["version"] == version
    assert any("refused model" in line for line in status["errors"])


def test_split_backend_gives_the_same_probabilities_as_each_runtime(artifacts: Artifacts) -> None:
    """auto may serve small batches with one runtime and large ones with the other."""
    from pathlib import Path

    from services.classifier.backends import SplitBackend, open_backend

    onnx = open_backend(Path(artifacts.first), "onnx", threads=1)
    litert = open_backend(Path(artifacts.first), "litert", threads=1)
    split = SplitBackend(onnx, litert, cutoff=8)
    offline = offline_probabilities(artifacts.first, artifacts.windows[:20])
    for n in (1, 7, 8, 20):
        np.testing.assert_allclose(split.predict(artifacts.windows[:n]), offline[:n], atol=1e-5)
