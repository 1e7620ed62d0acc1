"""The workout messages: strict, finite, bounded, on their own topics."""

from __future__ import annotations

import json

import pytest

from imu_har.protocol import topics
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.workout import (
    MAX_EXERCISES,
    ExerciseTotals,
    RepEvent,
    SetEvent,
    WorkoutState,
    split_form,
)

REP = {
    "device": "wrist-1",
    "exercise": "Pushup",
    "set": 2,
    "rep": 7,
    "start": 1000.0,
    "end": 1001.5,
    "form": "incorrect",
    "confidence": 0.8,
}
SET = {
    "device": "wrist-1",
    "exercise": "Pushup",
    "set": 2,
    "reps": 12,
    "start": 1000.0,
    "end": 1030.0,
    "incorrect": 2,
    "mean_rep_seconds": 1.6,
}


def test_round_trip_and_topics() -> None:
    rep, done = RepEvent(**REP), SetEvent(**SET)
    assert RepEvent.from_payload(rep.to_payload()) == rep
    assert SetEvent.from_payload(done.to_payload()) == done
    state = WorkoutState(
        device="wrist-1",
        state="set",
        exercise="Pushup",
        set=2,
        reps=7,
        date="2026-12-04",
        totals={"Pushup": ExerciseTotals(sets=1, reps=19, incorrect=2)},
    )
    assert WorkoutState.from_payload(state.to_payload()) == state
    assert RepEvent.TOPIC is topics.REP and SetEvent.TOPIC is topics.SET
    assert WorkoutState.TOPIC is topics.WORKOUT
    assert topics.REP.format("har", device="wrist-1") == "har/wrist-1/rep"


@pytest.mark.parametrize(
    "patch",
    [
        {"extra": 1},
        {"start": "NaN"},
        {"end": 999.0},  # before start
        {"confidence": 1.5},
        {"rep": 0},
        {"rep": "3"},  # strict: no strings for numbers
        {"form": "sloppy"},
        {"exercise": "a/b"},
        {"exercise": "x" * 65},
        {"device": "har/#"},
    ],
)
def test_bad_rep_events_are_refused(patch: dict[str, object]) -> None:
    text = json.dumps({**REP, **patch}).replace('"NaN"', "NaN")
    with pytest.raises(PayloadError) as caught:
        RepEvent.from_payload(text)
    assert caught.value.reason in {"bad_json", "bad_device"}


def test_bad_sets_and_states_are_refused() -> None:
    with pytest.raises(PayloadError):
        SetEvent.from_payload(json.dumps({**SET, "incorrect": 13}))  # more than reps
    with pytest.raises(PayloadError):
        SetEvent.from_payload(json.dumps({**SET, "mean_rep_seconds": float("inf")}))
    too_many = {f"e{i}": {"sets": 1, "reps": 1, "incorrect": 0} for i in range(MAX_EXERCISES + 1)}
    state = {"device": "d", "state": "rest", "date": "2026-12-04", "totals": too_many}
    with pytest.raises(PayloadError):
        WorkoutState.from_payload(json.dumps(state))
    with pytest.raises(PayloadError):
        WorkoutState.from_payload(json.dumps({**state, "totals": {}, "date": "yesterday"}))


def test_both_forms_are_one_exercise() -> None:
    assert split_form("Pushup_Incorrect") == ("Pushup", True)
    assert split_form("Pushup") == ("Pushup", False)
    assert split_form("_Incorrect") == ("_Incorrect", False)
