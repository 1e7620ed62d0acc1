"""The Live page's workout: the set under way, its repetitions and their form, today's sets.

The store is fed what ``har workout`` publishes (retained ``WorkoutState``,
``RepEvent``, ``SetEvent``); the page is run under Streamlit's AppTest on
messages published to a real broker.
"""

from __future__ import annotations

import time

import pytest

from imu_har.protocol import topics
from imu_har.protocol.workout import ExerciseTotals, RepEvent, SetEvent, WorkoutState
from services.dashboard.devices import Limits
from services.dashboard.store import Store
from services.dashboard.workouts import MAX_REPS, MAX_SETS, local_date, sets_table
from tests.support import publish as pub
from tests.support.dashboard import app, connection_of, metrics, texts, wait_until

DEV = "wrist-1"
# The tests' workouts happen around today's local noon: never on two dates, whenever they run.
T0 = time.mktime((*time.localtime()[:3], 12, 0, 0, 0, 0, -1))


def state(
    exercise: str | None = "Squat", set_: int = 3, reps: int = 4, at: float | None = None
) -> WorkoutState:
    at = T0 if at is None else at
    totals = {"Squat": ExerciseTotals(sets=2, reps=20, incorrect=3)}
    return WorkoutState(
        device=DEV, state="set" if exercise else "rest", exercise=exercise, set=set_, reps=reps,
        date=local_date(at), totals=totals, updated_at=at,
    )  # fmt: skip


def rep(n: int, set_: int = 3, form: str = "correct", end: float | None = None) -> RepEvent:
    end = (T0 if end is None else end) - 30 + 2 * n
    return RepEvent(
        device=DEV, exercise="Squat", set=set_, rep=n, start=end - 1.5, end=end,
        form=form, confidence=0.9,  # type: ignore[arg-type]
    )  # fmt: skip


def finished(set_: int, reps: int = 10, end: float | None = None) -> SetEvent:
    end = T0 - 600 + 60 * set_ if end is None else end
    return SetEvent(
        device=DEV, exercise="Squat", set=set_, reps=reps, start=end - 25, end=end,
        incorrect=min(set_ - 1, reps), mean_rep_seconds=2.5,
    )  # fmt: skip


def feed(store: Store, message: WorkoutState | RepEvent | SetEvent, now: float) -> None:
    template = {WorkoutState: topics.WORKOUT, RepEvent: topics.REP, SetEvent: topics.SET}
    store.ingest(template[type(message)].format(device=message.device), message.to_payload(), now)


def test_the_store_keeps_the_current_set_its_reps_and_todays_sets() -> None:
    store, now = Store(), time.time()
    assert store.workout(DEV, now) is None  # nothing from har workout yet
    for message in (
        finished(1),
        finished(2),
        state(reps=3),
        rep(1),
        rep(2),
        rep(3, form="incorrect"),
    ):
        feed(store, message, now)
    feed(store, rep(1, set_=2), now)  # the previous set's: not the current one's
    feed(store, finished(9, end=now - 2 * 86_400), now)  # the day before yesterday: not today's
    view = store.workout(DEV, now)
    assert view is not None and view.in_set and view.state is not None
    assert (view.state.exercise, view.state.set, view.state.reps) == ("Squat", 3, 3)
    assert [r.rep for r in view.reps] == [1, 2, 3] and view.form_marks() == "✓ ✓ ✗"
    assert [s.set for s in view.sets] == [1, 2]
    assert view.totals() == (2, 20, 3)  # the retained state's totals (also sets before we came)
    table = sets_table(view.sets)
    assert list(table["set"]) == [2, 1] and list(table["incorrect"]) == [1, 0]  # newest first
    assert store.devices() == [DEV]  # a workout makes a device known (and evictable)


def test_workout_messages_are_deduplicated_checked_and_bounded() -> None:
    store, now = Store(limits=Limits(max_devices=2)), time.time()
    for n in range(1, MAX_REPS + 50):
        feed(store, rep(n), now)
    for n in range(1, MAX_SETS + 50):
        feed(store, finished(n, end=now - 10_000 + n), now)
    feed(store, rep(MAX_REPS), now)  # QoS 1 redeliveries of kept ones
    feed(store, finished(MAX_SETS, end=now - 10_000 + MAX_SETS), now)
    sizes = store.sizes()
    assert sizes["workout_reps"] == MAX_REPS and sizes["workout_sets"] == MAX_SETS
    assert store.snapshot()["ignored"]["duplicate"] == 2
    feed(store, state(at=now), now)
    feed(store, state(reps=9, at=now - 5), now)  # older than the one kept
    other = rep(1).model_copy(update={"device": "other-9"}).to_payload()
    store.ingest(topics.REP.format(device=DEV), other, now)  # payload device is not the topic's
    markup = state().to_payload().replace(b'"Squat"', b'"![p](http://127.0.0.1:9/p.png)"')
    store.ingest(topics.WORKOUT.format(device=DEV), markup, now)
    store.ingest(topics.SET.format(device=DEV), b"{not json", now)
    assert store.snapshot()["malformed"] == {"out_of_order": 1, "device_mismatch": 1, "bad_json": 2}
    view = store.workout(DEV, now)
    assert view is not None and view.state is not None and view.state.reps == 4
    store.ingest(topics.WORKOUT.format(device=DEV), b"", now)  # the retained state cleared
    assert store.workout(DEV, now).state is None  # type: ignore[union-attr]
    for device in ("a-1", "b-2"):  # max_devices 2: the workout leaves with its device
        store.ingest(topics.DEVICE_STATUS.format(device=device), b"", now + 1)
        feed(store, rep(1).model_copy(update={"device": device}), now + 1)
    assert store.workout(DEV, now) is None and store.sizes()["workouts"] == 2
    store.evict_idle(now + 10_000)
    assert store.sizes()["workouts"] == 0


@pytest.mark.broker
def test_live_page_shows_the_set_reps_as_they_happen_form_and_todays_sets(
    dashboard_settings, mqtt_client
) -> None:
    at = app()
    conn = connection_of(dashboard_settings)
    pub.publish_device(mqtt_client, DEV, label="Squat")
    for message in (finished(1), finished(2), rep(1), rep(2), rep(3, form="incorrect")):
        topic = (topics.REP if isinstance(message, RepEvent) else topics.SET).format(device=DEV)
        pub.publish(mqtt_client, topic, message.to_payload())
    workout_topic = topics.WORKOUT.format(device=DEV)
    pub.publish(mqtt_client, workout_topic, state(reps=3).to_payload(), retain=True)
    wait_until(lambda: (w := conn.store.workout(DEV)) is not None and len(w.reps) == 3)
    at.run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Set"] == "Squat · set 3" and shown["Repetitions"] == "3"
    assert shown["Today"] == "2 sets · 20 reps" and shown["Incorrect form"] == "3"
    assert "Form per repetition, set 3 (Squat): ✓ ✓ ✗" in texts(at)
    table = at.dataframe[0].value
    assert list(table["set"]) == [2, 1] and list(table["reps"]) == [10, 10]

    # the next repetition: the count goes up on the next redraw
    pub.publish(mqtt_client, topics.REP.format(device=DEV), rep(4).to_payload())
    pub.publish(mqtt_client, workout_topic, state(reps=4).to_payload(), retain=True)
    wait_until(lambda: conn.store.workout(DEV).state.reps == 4)  # type: ignore[union-attr]
    at.run()
    assert metrics(at)["Repetitions"] == "4" and "✓ ✓ ✗ ✓" in texts(at)

    # the set ends: resting, the set in today's table
    pub.publish(mqtt_client, topics.SET.format(device=DEV), finished(3, 4).to_payload())
    rest = state(exercise=None, reps=0).model_copy(
        update={"totals": {"Squat": ExerciseTotals(sets=3, reps=24, incorrect=4)}}
    )
    pub.publish(mqtt_client, workout_topic, rest.to_payload(), retain=True)
    wait_until(lambda: not conn.store.workout(DEV).in_set)  # type: ignore[union-attr]
    at.run()
    shown = metrics(at)
    assert shown["Set"] == "resting" and shown["Last set"] == "4 reps"
    assert shown["Today"] == "3 sets · 24 reps"
    assert list(at.dataframe[0].value["set"]) == [3, 2, 1]
    pub.publish(mqtt_client, workout_topic, b"", retain=True)  # leave no retained state


@pytest.mark.broker
def test_live_page_escapes_exercise_names(dashboard_settings, mqtt_client) -> None:
    """Exercise names are model class names: '_' (Markdown emphasis) is shown, not rendered."""
    at = app()
    conn = connection_of(dashboard_settings)
    device = "chest-2"
    named = state(exercise="Push_up_wide").model_copy(update={"device": device})
    pub.publish_device(mqtt_client, device, label="Pushup")
    workout_topic = topics.WORKOUT.format(device=device)
    pub.publish(mqtt_client, workout_topic, named.to_payload(), retain=True)
    first = rep(1).model_copy(update={"device": device, "exercise": "Push_up_wide"})
    pub.publish(mqtt_client, topics.REP.format(device=device), first.to_payload())
    wait_until(lambda: (w := conn.store.workout(device)) is not None and len(w.reps) == 1)
    at.run()
    assert not at.exception
    assert r"Push\_up\_wide · set 3" in [m.value for m in at.metric]
    assert r"set 3 (Push\_up\_wide): ✓" in texts(at)
    pub.publish(mqtt_client, workout_topic, b"", retain=True)
