"""Labels are names everywhere the protocol carries them (issue 12).

A recorder ``start`` refused ``"Squat\\n"``, but a prediction, a ground truth,
a model spec or a workout message still took any string as a label, so a
label that can never be recorded could still be served, published and logged.
One rule (:func:`imu_har.protocol.messages.validate_name`) serves them all; the
property test compares each message with a character-by-character statement of
the rule (``name_rule`` of test_names.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from pydantic import ValidationError

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import (
    MAX_LABELS,
    GroundTruth,
    OpenSession,
    Prediction,
    validate_name,
)
from imu_har.protocol.model_spec import ModelSpec
from imu_har.protocol.workout import RepEvent, WorkoutState, check_exercise
from tests.core.test_names import NAMES, accepts, name_rule

HOSTILE = ["Squat\n", "Squat\r", "a/b", "+", "#", "", "x" * 65, " Squat", "_x", "..", "é"]


def prediction(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "device": "sim-001",
        "window_seq": 1,
        "window_start": 1.0,
        "window_end": 2.0,
        "label": "Squat",
        "confidence": 0.75,
        "probabilities": {"Squat": 0.75, "rest": 0.25},
        "smoothed_label": "unknown",
        "model": "m",
        "model_version": "abc",
        "latency_ms": 1.0,
    }
    return values | changes


def spec(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "m",
        "version": "abc",
        "labels": ["Squat", "rest"],
        "channels": ["acc_x"],
        "window": 10,
        "hop": 5,
        "rate": 50.0,
    }
    return values | changes


def refused(model: Any, values: dict[str, Any]) -> str:
    with pytest.raises(PayloadError) as err:
        model.from_payload(json.dumps(values))
    assert err.value.reason == "bad_json"
    return str(err.value)


@pytest.mark.parametrize("bad", HOSTILE)
def test_a_prediction_refuses_a_label_that_is_not_a_name(bad: str) -> None:
    assert "label" in refused(Prediction, prediction(label=bad))
    assert "smoothed_label" in refused(Prediction, prediction(smoothed_label=bad))
    assert "probabilities" in refused(Prediction, prediction(probabilities={bad: 1.0}))


@pytest.mark.parametrize("key", ["Squat\x00", "Squat\x7f", "Sq\u2028uat", "Squat\x85", "\tSquat"])
def test_a_probabilities_key_with_a_control_character_is_refused(key: str) -> None:
    refused(Prediction, prediction(probabilities={"rest": 0.5, key: 0.5}))


def test_unknown_rest_and_the_model_classes_are_labels() -> None:
    labels = ["Jumping", "Pushup_Incorrect", "Jumping Jacks", "rest", "walk-2"]
    p = Prediction.from_payload(json.dumps(prediction(probabilities=dict.fromkeys(labels, 0.2))))
    assert p.smoothed_label == "unknown" and list(p.probabilities) == labels
    assert GroundTruth(device="d1", label="rest", time=1.0).label == "rest"


def test_a_prediction_has_at_most_as_many_classes_as_a_model() -> None:
    many = {f"c{i}": 1.0 / MAX_LABELS for i in range(MAX_LABELS)}
    assert len(Prediction.from_payload(json.dumps(prediction(probabilities=many))).probabilities)
    refused(Prediction, prediction(probabilities=many | {"one-more": 0.0}))


@pytest.mark.parametrize("bad", HOSTILE)
def test_ground_truth_and_open_sessions_refuse_bad_labels(bad: str) -> None:
    with pytest.raises(ValidationError):
        GroundTruth(device="d1", label=bad, time=1.0)
    session = {"session": "s1", "device": "d1", "label": "Squat", "started_at": 1.0}
    session |= {"seconds": 1.0, "rows": 0, "frames": 0}
    assert OpenSession.model_validate(session).label == "Squat"
    for field in ("label", "subject", "session"):
        with pytest.raises(ValidationError):
            OpenSession.model_validate(session | {field: bad})


@pytest.mark.parametrize("bad", HOSTILE)
def test_a_model_spec_refuses_a_label_that_is_not_a_name(bad: str) -> None:
    assert "labels" in refused(ModelSpec, spec(labels=["Squat", bad]))


def test_a_model_spec_refuses_repeated_labels_and_names_them() -> None:
    assert "'Squat'" in refused(ModelSpec, spec(labels=["Squat", "rest", "Squat"]))
    refused(ModelSpec, spec(labels=["Squat", "Squat\n"]))  # not a second class either


def test_a_model_spec_has_a_bounded_number_of_labels() -> None:
    labels = [f"c{i}" for i in range(MAX_LABELS)]
    assert len(ModelSpec.from_payload(json.dumps(spec(labels=labels))).labels) == MAX_LABELS
    refused(ModelSpec, spec(labels=[*labels, "one-more"]))


@pytest.mark.parametrize("bad", HOSTILE)
def test_workout_messages_refuse_exercises_that_are_not_labels(bad: str) -> None:
    rep = {"device": "d1", "exercise": bad, "set": 1, "rep": 1, "start": 1.0, "end": 2.0}
    rep |= {"form": "unknown", "confidence": 0.5}
    refused(RepEvent, rep)
    state = {"device": "d1", "state": "rest", "date": "2026-12-04"}
    refused(WorkoutState, state | {"exercise": bad})
    refused(WorkoutState, state | {"totals": {bad: {"sets": 1, "reps": 1, "incorrect": 0}}})


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_every_label_check_follows_the_one_rule(text: str) -> None:
    expected = name_rule(text)
    assert accepts(validate_name, text) == expected
    assert accepts(check_exercise, text) == expected
    p = prediction(label=text, smoothed_label=text, probabilities={text: 1.0})
    assert accepts(Prediction.from_payload, json.dumps(p)) == expected
    other = "y" if text == "x" else "x"
    assert accepts(ModelSpec.from_payload, json.dumps(spec(labels=[other, text]))) == expected
    assert accepts(lambda t: GroundTruth(device="d1", label=t, time=1.0), text) == expected
