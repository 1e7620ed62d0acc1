"""Window checks, topic parsing and the fast Prediction JSON (no model, no broker)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from imu_har.protocol.codec import DEFAULT_CHANNELS, DEFAULT_UNITS, Window
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import Prediction
from imu_har.protocol.model_spec import ModelSpec
from imu_har.protocol.topics import WINDOW
from services.classifier.core import PredictionEncoder, check_window

LABELS = ["Pushup", "Squat", "Jumping Jacks_2"]  # labels are names (issue 12): no '"', '\\', '%'
WEIRD = 'we"ird\\name%s'  # a model name still needs escaping in the JSON template


def make_spec(**changes: object) -> ModelSpec:
    values: dict[str, object] = {
        "name": "tiny",
        "version": "abc123",
        "labels": LABELS,
        "channels": list(DEFAULT_CHANNELS),
        "units": list(DEFAULT_UNITS),
        "window": 20,
        "hop": 5,
        "rate": 50.0,
    }
    values.update(changes)
    return ModelSpec.model_validate(values)


def make_window(**changes: object) -> Window:
    values: dict[str, object] = {
        "device": "dev-1",
        "seq": 7,
        "start": 1000.0,
        "end": 1000.38,
        "rate": 50.0,
        "samples": np.zeros((20, 9), np.float32),
        "source_time": 1000.5,
    }
    values.update(changes)
    return Window(**values)  # type: ignore[arg-type]


def test_matching_window_passes() -> None:
    check_window(make_window(), make_spec())
    check_window(make_window(rate=50.00001), make_spec())  # float32 rounding is tolerated


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        (make_window(samples=np.zeros((30, 9), np.float32)), "length_mismatch"),
        (make_window(rate=25.0), "rate_mismatch"),
        (
            make_window(
                samples=np.zeros((20, 3), np.float32),
                channels=DEFAULT_CHANNELS[:3],
                units=DEFAULT_UNITS[:3],
            ),
            "channel_mismatch",
        ),
        (make_window(channels=tuple(reversed(DEFAULT_CHANNELS))), "channel_mismatch"),
        (make_window(units=("mg",) * 9), "unit_mismatch"),
    ],
)
def test_mismatched_window_is_refused(window: Window, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        check_window(window, make_spec())
    assert info.value.reason == reason


def test_units_not_checked_when_spec_has_none() -> None:
    check_window(make_window(units=("mg",) * 9), make_spec(units=None))


@pytest.mark.parametrize(
    ("topic", "device"),
    [
        ("har/dev-1/window", "dev-1"),
        ("har/a/b/window", None),
        ("har/dev-1/imu", None),
        ("other/dev-1/window", None),
    ],
)
def test_window_device(topic: str, device: str | None) -> None:
    """The handler finds a window's device level with the template's splitter."""
    assert WINDOW.splitter("har")(topic) == device


def test_encoded_prediction_is_a_valid_prediction_message() -> None:
    spec = make_spec(name=WEIRD)
    encoder = PredictionEncoder(spec)
    window = make_window()
    probs = np.array([0.1, 0.7, 0.2], np.float32).tolist()  # model outputs are float32
    payload = encoder.encode(window, probs, 1, LABELS[2], 3.25, 1234.5)
    prediction = Prediction.from_payload(payload)
    assert prediction.device == "dev-1" and prediction.window_seq == 7
    assert (prediction.window_start, prediction.window_end) == (1000.0, 1000.38)
    assert prediction.label == "Squat" and prediction.smoothed_label == LABELS[2]
    assert np.float32(prediction.confidence) == np.float32(probs[1])  # float32 round-trips
    served = [prediction.probabilities[label] for label in LABELS]
    assert np.array_equal(np.array(served, np.float32), np.array(probs, np.float32))
    assert (prediction.model, prediction.model_version) == (WEIRD, "abc123")
    assert prediction.latency_ms == 3.25 and prediction.source_time == 1000.5
    assert prediction.classified_at == 1234.5
    assert json.loads(payload) == json.loads(prediction.to_payload())  # same fields, same values


def test_unknown_label_and_clamped_confidence() -> None:
    encoder = PredictionEncoder(make_spec())
    payload = encoder.encode(make_window(), [1.0000001, 0.0, 0.0], -1, "unknown", 0.0, 1.0)
    prediction = Prediction.from_payload(payload)
    assert prediction.label == "unknown" and prediction.smoothed_label == "unknown"
    assert prediction.confidence == 1.0
    assert all(math.isfinite(p) for p in prediction.probabilities.values())
