"""Classifier test helpers: tiny real artifacts, window payloads, commands, statuses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imu_har.protocol.codec import Window, encode_window
from imu_har.protocol.model_spec import ModelSpec
from imu_har.sim.simulation import synthetic_recordings

RATE, LENGTH, HOP = 50.0, 20, 5


@dataclass
class Artifacts:
    """Two tiny artifacts of the same geometry (different weights) and test windows."""

    first: Path
    second: Path
    windows: np.ndarray  # raw test windows (n, LENGTH, 9) float32 of another simulator seed


def simulated_table(seed: int, seconds: float):  # type: ignore[no-untyped-def]
    """Simulator recordings: two wearers, every exercise for ``seconds``."""
    return synthetic_recordings(2, seconds, rate=RATE, seed=seed).to_pandas()


def eval_windows(seed: int, seconds: float, spec: ModelSpec) -> np.ndarray:
    """Windows of simulated data cut exactly as ``har evaluate`` cuts them for ``spec``."""
    from training.api import load_windows
    from training.params import TrainParams

    params = TrainParams(window=spec.window, hop=spec.hop, rate=spec.rate)
    ws, _, _ = load_windows(simulated_table(seed, seconds), params, channels=tuple(spec.channels))
    return ws.x


def train_tiny(out: Path, seed: int) -> Path:
    from training.api import train_artifact

    train_artifact(
        simulated_table(0, 6.0),
        out,
        name=f"tiny-{seed}",
        arch="bilstm",
        window=LENGTH,
        hop=HOP,
        rate=RATE,
        units=8,
        layers=1,
        epochs=2,
        seed=seed,
    )
    return out


def window_payloads(
    x: np.ndarray, devices: int = 3, start: float = 1_000.0, seq0: int = 0
) -> list[tuple[str, bytes, Window]]:
    """(topic, payload, window) for windows ``x``, spread round-robin over ``devices``."""
    out = []
    for i, samples in enumerate(x):
        device = f"dev{i % devices}"
        seq = seq0 + i // devices
        t0 = start + seq * HOP / RATE
        window = Window(device, seq, t0, t0 + (LENGTH - 1) / RATE, RATE, samples, t0 + 0.5)
        out.append((f"har/{device}/window", encode_window(window), window))
    return out


def start_classifier(broker, run_service, model_dir: Path | None, **overrides):  # type: ignore[no-untyped-def]
    """Run a classifier on the test broker (status every 0.2 s); returns the RunningService."""
    from services.classifier.app import build
    from services.classifier.settings import ClassifierSettings

    values = {"mqtt_port": broker.port, "status_interval": 0.2, "model": model_dir}
    values.update(overrides)
    runtime, handler = build(ClassifierSettings.model_validate(values))
    return run_service(runtime, handler)


def send_command(client, payload: dict, response: str | None, correlation: bytes = b"") -> None:  # type: ignore[no-untyped-def]
    """Publish a classifier command (QoS 1), with an MQTT v5 response topic when given."""
    import json

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from imu_har.protocol import topics

    props = Properties(PacketTypes.PUBLISH)
    if response is not None:
        props.ResponseTopic = response
        props.CorrelationData = correlation
    data = json.dumps(payload).encode()
    client.publish(topics.CLASSIFIER_CMD.format(), data, qos=1, properties=props)


def command(client, payload: dict, timeout: float = 60.0) -> dict:  # type: ignore[no-untyped-def]
    """Send a classifier command with an MQTT v5 response topic; return the reply."""
    import json
    import uuid

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from imu_har.runtime.client import Collector

    response = f"test/reply/{uuid.uuid4().hex[:8]}"
    replies = Collector(client, response)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response
    props.CorrelationData = b"corr-1"
    client.publish("har/classifier/cmd", json.dumps(payload).encode(), qos=1, properties=props)
    got = replies.wait_for(1, timeout)
    assert got, f"no reply to {payload}"
    assert got[0].properties.CorrelationData == b"corr-1"
    return dict(json.loads(got[0].payload))


def status_where(client, predicate, timeout: float = 10.0) -> dict:  # type: ignore[no-untyped-def]
    """The first classifier status (retained or periodic) for which ``predicate`` holds."""
    import json

    from imu_har.runtime.client import Collector

    statuses = Collector(client, "har/service/classifier/status")
    got = statuses.wait_for(
        timeout=timeout,
        predicate=lambda msgs: any(predicate(json.loads(m.payload)) for m in msgs),
    )
    matching = [json.loads(m.payload) for m in got if predicate(json.loads(m.payload))]
    assert matching, f"no status matched; last: {got[-1].payload[:500] if got else None!r}"
    return dict(matching[-1])


def offline_probabilities(model_dir, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What ``har evaluate`` computes for windows ``x``: the Keras model of the artifact."""
    from training.artifact import load_artifact
    from training.fit import predict

    return predict(load_artifact(model_dir).model, x)


def expected_smoothing(
    probs: dict[tuple[str, int], np.ndarray], labels: list[str], k: int, mode: str, threshold: float
) -> dict[tuple[str, int], str]:
    """Reference smoothing: windows seq-k+1..seq of the same device, majority or mean."""

    def name(p: np.ndarray) -> str:
        return labels[int(np.argmax(p))] if p.max() >= threshold else "unknown"

    out = {}
    for device, seq in probs:
        recent = [probs[(device, s)] for s in range(seq - k + 1, seq + 1) if (device, s) in probs]
        if mode == "mean":
            out[(device, seq)] = name(np.mean(recent, axis=0))
        else:
            votes = [name(p) for p in recent]
            top = max(votes.count(v) for v in votes)
            out[(device, seq)] = next(v for v in reversed(votes) if votes.count(v) == top)
    return out
