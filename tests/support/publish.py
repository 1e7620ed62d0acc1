"""Build and publish the real messages the dashboard shows (frames, predictions, ...)."""

from __future__ import annotations

import time

import numpy as np
import paho.mqtt.client as mqtt

from imu_har.protocol import topics
from imu_har.protocol.codec import Frame, encode_frame
from imu_har.protocol.messages import Counters, GroundTruth, Prediction, ServiceStatus
from imu_har.protocol.model_spec import ModelSpec

LABELS = ["Pushup", "Squat", "Jumping"]
ROOT = "har"


def frame_payload(device: str, seq: int, now: float | None = None, n: int = 5) -> bytes:
    """A valid raw frame of ``n`` samples at 50 Hz ending now."""
    t = (now or time.time()) + np.arange(n) / 50.0
    samples = np.stack([np.sin(t * (k + 1)) for k in range(9)], axis=1).astype(np.float32)
    return encode_frame(Frame(device, seq, now or time.time(), 50.0, samples))


def prediction(device: str, seq: int, label: str = "Squat", now: float | None = None) -> Prediction:
    """A prediction of ``label`` with confidence 0.8 for the window that just ended."""
    now = now or time.time()
    probs = {name: (0.8 if name == label else 0.2 / (len(LABELS) - 1)) for name in LABELS}
    return Prediction(
        device=device,
        window_seq=seq,
        window_start=now - 0.4,
        window_end=now,
        label=label,
        confidence=0.8,
        probabilities=probs,
        smoothed_label=label,
        model="test-model",
        model_version="abc123def456",
        latency_ms=12.5,
        source_time=now - 0.05,
        classified_at=now,
    )


def truth(device: str, label: str, at: float) -> GroundTruth:
    """What the device really does from ``at`` on."""
    return GroundTruth(device=device, label=label, rep=3, time=at, until=at + 60)


def service_status(name: str, state: str = "online", rejected: int = 0) -> ServiceStatus:
    """A service status with some counters, an error line and details."""
    return ServiceStatus(
        service=name,
        instance=f"{name}-test-1",
        state=state,  # type: ignore[arg-type]
        version="0.1.0",
        started_at=time.time() - 120,
        counters=Counters(messages_in=4321, messages_out=1234, rejected={"bad_json": rejected}),
        errors=["12:00:00 something went wrong once"],
        details={"backend": "onnx", "model": "test-model"},
    )


def model_spec() -> ModelSpec:
    """A small model spec with metrics and a confusion matrix."""
    return ModelSpec(
        name="bilstm-test",
        version="0123456789abcdef0123",
        labels=LABELS,
        channels=["acc_x", "acc_y", "acc_z"],
        window=20,
        hop=5,
        rate=50.0,
        metrics={
            "accuracy": 0.9123,
            "macro_f1": 0.8765,
            "confusion_matrix": [[17, 2, 0], [1, 19, 0], [0, 0, 23]],
            "labels": LABELS,
        },
        created_at="2026-11-24T10:00:00Z",
    )


def publish(client: mqtt.Client, topic: str, payload: bytes, retain: bool = False) -> None:
    """Publish with QoS 1 and wait until the broker has it."""
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def publish_device(
    client: mqtt.Client, device: str, frames: int = 20, label: str = "Squat"
) -> None:
    """Frames, a ground truth and predictions for ``device``."""
    now = time.time()
    publish(
        client,
        topics.GROUND_TRUTH.format(ROOT, device=device),
        truth(device, label, now - 30).to_payload(),
        retain=True,
    )
    for seq in range(frames):
        at = now - (frames - seq) * 0.1
        publish(client, topics.IMU.format(ROOT, device=device), frame_payload(device, seq, at))
    for seq in range(3):
        publish(
            client,
            topics.PREDICTION.format(ROOT, device=device),
            prediction(device, seq, label, now).to_payload(),
        )
