"""Two replicas on one MQTT v5 shared subscription: every window once, smoothing intact."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from imu_har.protocol.messages import Prediction
from imu_har.protocol.model_spec import load_spec
from imu_har.runtime.client import Collector
from tests.support.classifier import (
    Artifacts,
    expected_smoothing,
    start_classifier,
    window_payloads,
)

pytestmark = [pytest.mark.broker, pytest.mark.tf]


def test_two_replicas_classify_every_window_exactly_once(
    broker, run_service, mqtt_client, artifacts: Artifacts
) -> None:  # type: ignore[no-untyped-def]
    replicas = [
        start_classifier(broker, run_service, artifacts.first, share_group="g1", client_id=f"r{i}")
        for i in range(2)
    ]
    predictions = Collector(mqtt_client, "har/+/prediction")
    sent = window_payloads(artifacts.windows, devices=5)
    for topic, payload, _ in sent:
        mqtt_client.publish(topic, payload, qos=1)
    got = predictions.wait_for(len(sent), timeout=30)
    assert len(predictions.wait_for(len(sent) + 1, timeout=1.0)) == len(sent)  # no duplicates
    keys = Counter(
        (p.device, p.window_seq) for p in (Prediction.from_payload(m.payload) for m in got)
    )
    assert keys == Counter((w.device, w.seq) for _, _, w in sent)
    shares = [r.handler.core.classified for r in replicas]  # type: ignore[attr-defined]
    assert sum(shares) == len(sent) and min(shares) > 0, shares


@pytest.mark.parametrize("mode", ["majority", "mean"])
def test_smoothing_is_correct_when_replicas_share_a_device(
    broker, run_service, mqtt_client, artifacts: Artifacts, mode: str
) -> None:  # type: ignore[no-untyped-def]
    """Windows of one device alternate between replicas; each smooths with the other's results."""
    k = 5
    replicas = [
        start_classifier(
            broker,
            run_service,
            artifacts.first,
            share_group=f"s-{mode}",
            client_id=f"{mode}{i}",
            smoothing=mode,
            smooth_k=k,
            threshold=0.3,
        )
        for i in range(2)
    ]
    labels = load_spec(artifacts.first).labels
    predictions = Collector(mqtt_client, "har/+/prediction")
    # one device, windows of every exercise in turn so that smoothing has work to do
    order = np.random.default_rng(3).permutation(len(artifacts.windows))[:60]
    sent = window_payloads(artifacts.windows[np.sort(order)], devices=1)
    for n, (topic, payload, _) in enumerate(sent, start=1):
        # a live device sends a window every hop (0.1 s); here: as soon as the last result is out
        mqtt_client.publish(topic, payload, qos=1)
        assert len(predictions.wait_for(n, timeout=10)) == n
    result = {}
    for m in predictions.messages:
        p = Prediction.from_payload(m.payload)
        probs = np.array([p.probabilities[label] for label in labels])
        result[(p.device, p.window_seq)] = (probs, p.smoothed_label)
    expected = expected_smoothing({key: v[0] for key, v in result.items()}, labels, k, mode, 0.3)
    assert {key: v[1] for key, v in result.items()} == expected
    assert len(set(expected.values())) > 1  # the labels really change over the stream
    shares = [r.handler.core.classified for r in replicas]  # type: ignore[attr-defined]
    assert min(shares) > 0, shares
