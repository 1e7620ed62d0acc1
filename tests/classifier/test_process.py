"""The classifier as a process: no TensorFlow with the light backends, CLI start/stop, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imu_har.protocol.messages import Prediction, ServiceStatus
from imu_har.runtime.client import Collector
from tests.support.classifier import Artifacts, status_where, window_payloads

pytestmark = [pytest.mark.broker, pytest.mark.tf]
ROOT = Path(__file__).resolve().parents[2]
AUTO_CHOICES = {"onnx", "litert", "onnx+litert", "litert+onnx"}  # timing decides

SERVE_ONCE = textwrap.dedent(
    """
    import json, sys, threading
    import numpy as np
    from imu_har.protocol.codec import Window, encode_window
    from imu_har.runtime.client import Collector, connect
    from services.classifier.app import build
    from services.classifier.settings import ClassifierSettings

    port, model, backend = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    runtime, service = build(ClassifierSettings(mqtt_port=port, model=model, backend=backend))
    thread = threading.Thread(target=runtime.run, args=(service,), daemon=True)
    thread.start()
    assert runtime.ready.wait(10)
    client = connect("127.0.0.1", port)
    predictions = Collector(client, "har/+/prediction")
    window = Window("solo", 0, 1.0, 1.38, 50.0, np.ones((20, 9), np.float32))
    client.publish("har/solo/window", encode_window(window), qos=1)
    got = predictions.wait_for(1, timeout=10)
    runtime.stop()
    thread.join(10)
    client.disconnect()
    print(json.dumps({
        "predictions": len(got),
        "backend": service.core.model.backend.name,
        "tensorflow": "tensorflow" in sys.modules,
        "keras": "keras" in sys.modules,
    }))
    """
)


def run_python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("backend", ["onnx", "litert", "auto"])
def test_light_backends_never_import_tensorflow(broker, artifacts: Artifacts, backend: str) -> None:  # type: ignore[no-untyped-def]
    done = run_python("-c", SERVE_ONCE, str(broker.port), str(artifacts.first), backend)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["predictions"] == 1
    assert result["backend"] in (AUTO_CHOICES if backend == "auto" else {backend})
    assert not result["tensorflow"] and not result["keras"], result


def test_tensorflow_backend_is_the_fallback(broker, artifacts: Artifacts) -> None:  # type: ignore[no-untyped-def]
    done = run_python("-c", SERVE_ONCE, str(broker.port), str(artifacts.first), "tensorflow")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"predictions": 1, "backend": "tensorflow", "tensorflow": True, "keras": True}


def test_cli_serves_and_stops_cleanly_on_sigterm(broker, mqtt_client, artifacts: Artifacts) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, HAR_MQTT_PORT=str(broker.port), HAR_STATUS_INTERVAL="0.2")
    process = subprocess.Popen(
        [sys.executable, "-m", "imu_har.ops.cli", "classifier", "--model", str(artifacts.first)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = status_where(mqtt_client, lambda s: s["state"] == "online", timeout=60)
        assert status["details"]["backend"] in AUTO_CHOICES
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        assert "tensorflow" not in maps  # no TensorFlow library is even mapped
        predictions = Collector(mqtt_client, "har/+/prediction")
        topic, payload, _ = window_payloads(artifacts.windows[:1], devices=1)[0]
        mqtt_client.publish(topic, payload, qos=1)
        assert Prediction.from_payload(predictions.wait_for(1, timeout=10)[0].payload)
        offline = Collector(mqtt_client, "har/service/classifier/status")
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        last = offline.wait_for(
            timeout=5,
            predicate=lambda ms: ServiceStatus.from_payload(ms[-1].payload).state == "offline",
        )
        assert ServiceStatus.from_payload(last[-1].payload).state == "offline"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_cli_refuses_a_missing_model_and_bad_settings(tmp_path: Path) -> None:
    done = run_python("-m", "services.classifier", "--model", str(tmp_path / "nope"))
    assert done.returncode == 2 and "is not a directory" in done.stderr
    done = run_python("-m", "services.classifier", "--backend", "cuda")
    assert done.returncode == 2 and "--backend" in done.stderr
    done = run_python("-m", "services.classifier", "--share-group", "a/#")
    assert done.returncode == 2 and "--share-group" in done.stderr
    done = run_python("-m", "services.classifier")
    assert done.returncode == 2 and "give --model or a --watch-dir" in done.stderr
