"""The bridge's pure core with explicit times: what goes out, when, and what is refused."""

from __future__ import annotations

import json
import time

import pytest

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import DeviceStatus
from imu_har.protocol.workout import ExerciseTotals, RepEvent, SetEvent, WorkoutState
from services.homeassistant.core import Bridge, Out
from services.homeassistant.settings import HomeAssistantSettings
from services.homeassistant.wearable import day_of
from tests.support.homeassistant import schema_problems
from tests.support.publish import model_spec, prediction

T0 = time.time()
DEV = "wrist-1"
CONFIG = f"homeassistant/device/imuhar__har__{DEV}/config"
STATE = f"har/homeassistant/{DEV}/state"
AVAILABLE = f"har/homeassistant/{DEV}/availability"
EVENT = f"har/homeassistant/{DEV}/event"


def bridge(**overrides: object) -> Bridge:
    return Bridge(HomeAssistantSettings(**overrides))  # type: ignore[arg-type]


def status(state: str = "streaming", at: float = T0, device: str = DEV) -> DeviceStatus:
    return DeviceStatus(device=device, state=state, source="sim", updated_at=at)  # type: ignore[arg-type]


def workout(reps: int, sets: int, in_set: bool = True, at: float = T0) -> WorkoutState:
    totals = {"Squat": ExerciseTotals(sets=sets, reps=reps)}
    return WorkoutState(
        device=DEV,
        state="set" if in_set else "rest",
        exercise="Squat" if in_set else None,
        set=sets + 1,
        reps=3 if in_set else 0,
        date=day_of(at),
        totals=totals,
        updated_at=at,
    )


def on(out: list[Out], topic: str) -> list[bytes]:
    return [payload for t, payload, _qos, _retain in out if t == topic]


def states(out: list[Out]) -> list[dict[str, object]]:
    return [json.loads(p) for p in on(out, STATE)]


def test_a_wearable_appears_with_discovery_then_availability_then_state() -> None:
    core = bridge()
    out = core.status(DEV, status(), T0, retained=False)
    assert [t for t, *_ in out] == [CONFIG, AVAILABLE, STATE]
    _topic, payload, qos, retain = out[0]
    assert (qos, retain) == (1, True) and schema_problems(json.loads(payload)) == []
    assert out[1][1:] == (b"online", 1, True)
    assert states(out) == [{"exercise": "unknown", "confidence": 0, "reps": 0, "reps_today": 0,
                            "sets_today": 0, "form": "unknown", "in_set": False,
                            "link": "streaming"}]  # fmt: skip
    assert out[2][2:] == (0, False)  # state: QoS 0, not retained


def test_changes_go_out_and_unchanged_values_do_not() -> None:
    core = bridge(topic_root="har")
    core.spec(model_spec(), T0)
    core.status(DEV, status(), T0, retained=False)
    out = core.prediction(prediction(DEV, 1, "Squat", T0), T0 + 2)
    assert [(s["exercise"], s["confidence"]) for s in states(out)] == [("Squat", 80)]
    assert core.prediction(prediction(DEV, 2, "Squat", T0), T0 + 4) == []  # nothing changed
    assert states(core.tick(T0 + 10)) == states(out)  # once more, after Home Assistant set it up
    assert core.tick(T0 + 20) == []


def test_the_rate_limit_holds_and_the_last_value_follows() -> None:
    core = bridge(max_state_rate=1.0)
    core.spec(model_spec(), T0)
    core.status(DEV, status(), T0, retained=False)
    sent = []
    labels = ["Pushup", "Squat", "Jumping"]
    for i in range(99):  # 99 changes within 0.98 s
        now = T0 + 2 + i * 0.0099
        sent += states(core.prediction(prediction(DEV, i, labels[i % 3], now), now))
        sent += states(core.tick(now))
    assert [s["exercise"] for s in sent] == ["Pushup"]  # the first, at once
    sent += states(core.tick(T0 + 3.0))  # one interval later: the newest value
    assert [s["exercise"] for s in sent] == ["Pushup", labels[98 % 3]]


def test_a_change_back_within_the_interval_sends_nothing() -> None:
    core = bridge(max_state_rate=1.0)
    core.spec(model_spec(), T0)
    core.status(DEV, status(), T0, retained=False)
    core.prediction(prediction(DEV, 1, "Squat", T0 + 2), T0 + 2)
    core.prediction(prediction(DEV, 2, "Pushup", T0 + 2.2), T0 + 2.2)
    core.prediction(prediction(DEV, 3, "Squat", T0 + 2.4), T0 + 2.4)
    assert states(core.tick(T0 + 3.5)) == []
    assert core.counts["state_unchanged"] == 1


def test_labels_outside_the_models_options_read_unknown() -> None:
    core = bridge()
    core.status(DEV, status(), T0, retained=False)
    out = core.prediction(prediction(DEV, 1, "Squat", T0 + 2), T0 + 2)  # no spec yet
    assert states(out)[0]["exercise"] == "unknown" and core.counts["unknown_label"] == 1
    out = core.spec(model_spec(), T0 + 3)  # the options change: discovery again
    config = json.loads(on(out, CONFIG)[0])
    assert config["components"]["exercise"]["options"] == ["Pushup", "Squat", "Jumping", "rest",
                                                            "unknown"]  # fmt: skip


def test_workout_counts_today_and_ignore_another_days_totals() -> None:
    core = bridge()
    core.status(DEV, status(), T0, retained=False)
    out = core.workout(workout(reps=12, sets=2), T0 + 1, retained=False)
    assert {k: states(out)[0][k] for k in ("reps", "reps_today", "sets_today", "in_set")} == {
        "reps": 3, "reps_today": 12, "sets_today": 2, "in_set": True}  # fmt: skip
    yesterday = workout(reps=40, sets=5, in_set=False, at=T0 - 86_400)
    out = core.workout(yesterday, T0 + 3, retained=True)
    assert (states(out)[0]["reps_today"], states(out)[0]["sets_today"]) == (0, 0)


def test_a_repetition_sets_the_form_and_fires_an_event_within_its_budget() -> None:
    core = bridge(max_event_rate=2.0)
    core.status(DEV, status(), T0, retained=False)
    fired = []
    for i in range(10):  # ten repetitions in the same instant: a burst of two passes
        rep = RepEvent(device=DEV, exercise="Squat", set=1, rep=i + 1, start=T0, end=T0 + 1,
                       form="incorrect", confidence=0.9)  # fmt: skip
        fired += on(core.repetition(rep, T0 + 1), EVENT)
    assert [json.loads(e)["rep"] for e in fired] == [1, 2]
    assert core.refused[0][0] == "event_rate" and len(core.refused) == 8
    done = SetEvent(device=DEV, exercise="Squat", set=1, reps=10, start=T0, end=T0 + 20,
                    incorrect=10, mean_rep_seconds=2.0)  # fmt: skip
    event = json.loads(on(core.finished_set(done, T0 + 2), EVENT)[0])  # one token back after 0.5 s
    assert event == {"event_type": "set", "exercise": "Squat", "set": 1, "reps": 10,
                     "incorrect": 10, "seconds": 20.0}  # fmt: skip
    assert states(core.tick(T0 + 5))[-1]["form"] == "incorrect"


def test_disconnection_and_a_stale_link_make_the_wearable_unavailable() -> None:
    core = bridge(link_timeout=30.0)
    core.status(DEV, status(), T0, retained=False)
    assert on(core.status(DEV, status("disconnected"), T0 + 1, False), AVAILABLE) == [b"offline"]
    assert on(core.status(DEV, status("streaming"), T0 + 2, False), AVAILABLE) == [b"online"]
    assert on(core.tick(T0 + 20), AVAILABLE) == []  # still fresh
    out = core.tick(T0 + 40)  # no status for 38 s: its gateway is gone
    assert on(out, AVAILABLE) == [b"offline"] and states(out)[0]["link"] == "disconnected"


def test_a_forgotten_wearable_is_removed_or_kept() -> None:
    for remove, expected in (
        (True, [(CONFIG, b""), (AVAILABLE, b"")]),
        (False, [(AVAILABLE, b"offline")]),
    ):
        core = bridge(forget_after=60.0, remove_forgotten=remove)
        core.status(DEV, status(), T0, retained=False)
        core.tick(T0 + 30)
        out = core.tick(T0 + 61)
        assert [(t, p) for t, p, _q, retain in out if retain] == expected
        assert DEV not in core.wearables


def test_a_retained_message_of_a_long_gone_wearable_does_not_bring_it_back() -> None:
    core = bridge(forget_after=60.0)
    out = core.status(DEV, status(at=T0 - 3600), T0, retained=True)
    assert [(t, p) for t, p, *_ in out] == [(CONFIG, b""), (AVAILABLE, b"")]
    assert core.wearables == {}
    assert core.status(DEV, status(at=T0 - 3600), T0, retained=False) != []  # live: it is back


def test_home_assistant_online_brings_discovery_back_after_the_delay() -> None:
    core = bridge(birth_delay=5.0)
    core.status(DEV, status(), T0, retained=False)
    core.tick(T0 + 1)
    assert core.home_assistant(b"online", T0 + 10) == []
    assert on(core.tick(T0 + 12), CONFIG) == []
    out = core.tick(T0 + 15.1)
    assert len(on(out, CONFIG)) == 1 and on(out, AVAILABLE) == [b"online"]
    assert len(states(core.tick(T0 + 21))) == 1  # and the state, once the entities exist
    with pytest.raises(PayloadError, match="Home Assistant status"):
        core.home_assistant(b"\x00" * 10_000, T0)


def test_bounds_refuse_before_changing_anything() -> None:
    core = bridge(max_wearables=2, max_labels=3)
    core.status("a", status(device="a"), T0, False)
    core.status("b", status(device="b"), T0, False)
    with pytest.raises(PayloadError, match="2 wearables") as caught:
        core.status("c", status(device="c"), T0, False)
    assert caught.value.reason == "too_many_devices" and set(core.wearables) == {"a", "b"}
    spec = model_spec()
    with pytest.raises(PayloadError) as caught:
        core.spec(spec.model_copy(update={"labels": ["a", "b", "c", "d"]}), T0)
    assert caught.value.reason == "too_many_labels"
    with pytest.raises(PayloadError) as caught:
        core.spec(spec.model_copy(update={"labels": ["ok", "<script>"]}), T0)
    assert caught.value.reason == "bad_label" and "Squat" not in core.options


def test_a_wearable_keeps_no_untrusted_text_but_its_id() -> None:
    core = bridge()
    huge = DeviceStatus(device=DEV, state="streaming", source="x" * 200_000)
    out = core.status(DEV, huge, T0, retained=False)
    assert core.wearables[DEV].source == "other"
    assert json.loads(on(out, CONFIG)[0])["device"]["model"] == "IMU wearable (other source)"
    assert on(core.status(DEV, status(), T0 + 1, False), CONFIG)  # sim: the model changes
    assert core.wearables[DEV].source == "sim"
