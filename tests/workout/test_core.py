"""The pure core: sets, repetitions and form from frames and predictions, no broker.

Sessions come from the realistic simulator (set-up moves, uneven repetitions,
pauses, partial repetitions) with an oracle classifier (tests/support/workout.py),
so what is tested is the workout logic, not a model.
"""

from __future__ import annotations

import numpy as np
import pytest

from imu_har.protocol.codec import Frame
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import Prediction
from imu_har.protocol.workout import RepEvent, SetEvent, WorkoutState
from imu_har.sim.realism import Realism
from services.workout.core import WorkoutCore
from services.workout.settings import WorkoutSettings
from tests.support.workout import T0, frames, oracle, session
from training.reps import replay

# Straight from sit-ups into push-ups (a change of exercise without rest); the push-ups
# lose form when tired (the simulator's fatigue), both forms are one exercise.
STEPS = [("rest", 6.0), ("Squat", 0.0), ("rest", 12.0), ("Situp", 0.0), ("Pushup", 0.0)]
STEPS += [("rest", 10.0)]


def run(rate: float, seed: int = 3, steps: list[tuple[str, float]] = STEPS):  # type: ignore[no-untyped-def]
    rec = session(steps, rate=rate, seed=seed)
    core = WorkoutCore(WorkoutSettings())
    out = replay(core, frames("wrist-1", rec), oracle("wrist-1", rec))
    return rec, core, [m for _, m in out]


@pytest.mark.parametrize("rate", [12.5, 50.0, 200.0])
def test_sets_repetitions_and_form_at_every_rate(rate: float) -> None:
    rec, _, out = run(rate)
    sets = [m for m in out if isinstance(m, SetEvent)]
    reps = [m for m in out if isinstance(m, RepEvent)]
    # One set per true set, in order, with the exercise (both forms of push-ups are one).
    assert [s.exercise for s in sets] == [t.exercise for t in rec.sets]
    for found, true in zip(sets, rec.sets, strict=True):
        assert abs(found.reps - len(true.reps)) <= 2, (found, len(true.reps))
        assert found.incorrect == pytest.approx(true.incorrect, abs=2)
        mine = [r for r in reps if r.set == found.set]
        assert [r.rep for r in mine] == list(range(1, len(mine) + 1))  # counts restart per set
        # The set's count is the whole set counted again; its live events came one by one.
        assert abs(len(mine) - found.reps) <= 2, (len(mine), found.reps)
        # A set-up move just before the first repetition (the oracle calls getting into
        # position the exercise) may be counted: at most one, within 4 s of the first.
        assert all(T0 + true.start - 4 <= r.start and r.end <= T0 + true.end + 3 for r in mine)
    assert len({s.set for s in sets}) == len(sets)


def test_every_set_is_counted_again_at_its_end() -> None:
    _rec, core, out = run(50.0)
    sets = [m for m in out if isinstance(m, SetEvent)]
    counts = core.tracker_counts()
    again = sum(counts[k] for k in ("recount_same", "recount_more", "recount_fewer"))
    assert sets and again >= len(sets), counts


def test_the_retained_state_follows_the_workout() -> None:
    _rec, _, out = run(50.0)
    states = [m for m in out if isinstance(m, WorkoutState)]
    assert states[-1].state == "rest" and states[-1].exercise is None
    totals = states[-1].totals
    sets = [m for m in out if isinstance(m, SetEvent)]
    assert {k: v.sets for k, v in totals.items()} == {"Squat": 1, "Situp": 1, "Pushup": 1}
    assert sum(v.reps for v in totals.values()) == sum(s.reps for s in sets)
    in_set = [s for s in states if s.state == "set"]
    assert {s.exercise for s in in_set} == {"Squat", "Situp", "Pushup"}
    # Live, the count goes up one by one; the set counted again at its end may differ.
    assert abs(max(s.reps for s in in_set if s.exercise == "Squat") - sets[0].reps) <= 2


def test_rest_with_the_classifier_saying_an_exercise_starts_no_set() -> None:
    """Standing (with fidgets) while the classifier insists on squats: a fidget may show as
    a repetition live (a set starts on its first one, for latency), but no set comes of it
    (fewer than ``min_set_reps``) and the day's totals drop it again."""
    rec = session([("rest", 40.0)], seed=5)
    preds = oracle("wrist-1", rec)
    for p in preds:  # the classifier is wrong all along
        p.probabilities = {k: (0.9 if k == "Squat" else 0.1 / 7) for k in p.probabilities}
    core = WorkoutCore(WorkoutSettings())
    out = [m for _, m in replay(core, frames("wrist-1", rec), preds)]
    assert not [m for m in out if isinstance(m, SetEvent)]
    assert len([m for m in out if isinstance(m, RepEvent)]) < WorkoutSettings().min_set_reps
    last = out[-1]
    assert isinstance(last, WorkoutState) and last.state == "rest" and last.set == 0
    assert all(t.reps == 0 and t.sets == 0 for t in last.totals.values())


def test_without_an_incorrect_class_the_form_is_unknown() -> None:
    _rec, _, out = run(50.0, steps=[("rest", 5.0), ("Squat", 0.0), ("rest", 10.0)])
    reps = [m for m in out if isinstance(m, RepEvent)]
    assert reps and {r.form for r in reps} == {"unknown"}


# -- hostile input -------------------------------------------------------------------


def frame(device: str = "d", receive: float = T0, rate: float = 50.0, n: int = 13) -> Frame:
    samples = np.tile(np.float32([1.0, 0, 0, 0, 0, 0, 20, 0, -40]), (n, 1))
    return Frame(device, 0, receive, rate, samples)


def prediction(probabilities: dict[str, float], device: str = "d", end: float = T0) -> Prediction:
    # Not validated: the core checks what it takes itself (har reps builds predictions from
    # files), whatever the message model refuses on the way in.
    return Prediction.model_construct(
        device=device,
        window_seq=0,
        window_start=end - 2,
        window_end=end,
        label="x",
        confidence=0.5,
        probabilities=probabilities,
        smoothed_label="x",
        model="m",
        model_version="v",
        latency_ms=1.0,
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (frame(receive=T0 + 1e6), "time_in_future"),
        (frame(receive=T0 - 1e6), "time_too_old"),
        (frame(rate=0.001, n=2), "bad_rate"),  # a grid of millions of samples otherwise
        (frame(rate=10_000.0), "bad_rate"),
        (frame(rate=5.0, n=1024), "frame_too_long"),
        (prediction({f"c{i}": 1 / 100 for i in range(100)}), "too_many_labels"),
        (prediction({"Squat": 0.7, "rest": 0.7}), "bad_probabilities"),
        (prediction({"Squat": 1.5, "rest": -0.5}), "bad_probabilities"),
        (prediction({"a/b": 0.5, "rest": 0.5}), "bad_label"),
        (prediction({"Squat": 1.0}, end=T0 + 1e6), "time_in_future"),
    ],
)
def test_hostile_input_is_refused_with_its_reason(bad: Frame | Prediction, reason: str) -> None:
    core = WorkoutCore(WorkoutSettings())
    with pytest.raises(PayloadError) as caught:
        core.push(bad, now=T0)
    assert caught.value.reason == reason
    good = core.push(frame(receive=T0 + 0.3), now=T0 + 0.3)  # and the core goes on
    assert good == [] and "d" in core.devices


def test_a_frame_far_ahead_cannot_silence_its_device() -> None:
    """Refused, so it never moves the device's timeline: later frames still count."""
    core = WorkoutCore(WorkoutSettings())
    core.push(frame(receive=T0), now=T0)
    with pytest.raises(PayloadError):
        core.push(frame(receive=T0 + 5e5), now=T0 + 0.3)
    for k in range(1, 9):  # two seconds of frames: at rest they are taken a second at a time
        core.push(frame(receive=T0 + 0.26 * k), now=T0 + 0.26 * k)
    assert core.devices["d"].signal.last_time == pytest.approx(T0 + 0.26 * 8)
    assert not core.counts["late_samples"]


def test_unknown_labels_are_exercises_of_their_own() -> None:
    core = WorkoutCore(WorkoutSettings())
    core.push(prediction({"Burpee": 0.8, "Burpee_Incorrect": 0.1, "rest": 0.1}), now=T0)
    vote = core.devices["d"].votes.recent[-1]
    assert vote.top == "Burpee" and vote.top_p == pytest.approx(0.9)
    assert vote.incorrect == {"Burpee": pytest.approx(0.1)}


def test_a_flood_of_devices_is_bounded() -> None:
    core = WorkoutCore(WorkoutSettings(max_devices=50))
    for i in range(50):
        core.push(frame(f"dev-{i}"), now=T0)
    with pytest.raises(PayloadError) as caught:
        core.push(frame("one-too-many"), now=T0)
    assert caught.value.reason == "too_many_devices"
    with pytest.raises(PayloadError):
        core.push(prediction({"Squat": 1.0}, device="another"), now=T0)
    core.push(frame("dev-7", receive=T0 + 0.3), now=T0 + 0.3)  # known devices go on


def test_silent_devices_end_their_set_and_are_forgotten() -> None:
    settings = WorkoutSettings(idle_timeout=30.0, forget_after=600.0)
    rec = session([("rest", 5.0), ("Squat", 0.0)], seed=3)  # ends mid-air: no rest after
    core = WorkoutCore(settings)
    items = sorted([*frames("w", rec), *oracle("w", rec)], key=_arrival)
    for item in items:
        core.push(item, now=_arrival(item))
    assert core.devices["w"].current is not None  # the set is still open
    out = core.tick(_arrival(items[-1]) + 31.0)
    assert [type(m).__name__ for m in out][-2:] == ["SetEvent", "WorkoutState"]
    assert core.tick(_arrival(items[-1]) + 601.0) == [] and not core.devices


def _arrival(item: Frame | Prediction) -> float:
    return item.window_end + 0.15 if isinstance(item, Prediction) else item.receive_time


@pytest.mark.parametrize(
    ("blind", "called"), [((0.35, 10.0), "rest"), ((0.5, 9.5), "rest"), ((0.4, 8.0), "Lunge")]
)
def test_a_set_the_classifier_loses_for_seconds_goes_on(
    blind: tuple[float, float], called: str
) -> None:
    """Some seconds in the middle of a long set the classifier calls rest (the demo model
    does so for some people's lunges) or another exercise (squats lunges): the set ends
    (or a short set of the other starts, and is dropped), and when the exercise is seen
    again within ``join_seconds`` it goes on: one set, its repetitions numbered on, its
    count the whole set's."""
    long = Realism(reps=(20, 20), pause_chance=0.0, long_pause_chance=0.0, partial_chance=0.0)
    rec = session([("rest", 6.0), ("Squat", 0.0), ("rest", 14.0)], seed=8, realism=long)
    true = rec.sets[0]
    where, seconds = blind
    lost_from = T0 + true.start + where * (true.end - true.start)
    preds = oracle("wrist-1", rec)
    for p in preds:
        if lost_from <= p.window_start and p.window_end <= lost_from + seconds:
            p.probabilities = {k: (0.9 if k == called else 0.1 / 7) for k in p.probabilities}
    core = WorkoutCore(WorkoutSettings())
    out = [m for _, m in replay(core, frames("wrist-1", rec), preds)]
    sets = [m for m in out if isinstance(m, SetEvent)]
    reps = [m for m in out if isinstance(m, RepEvent)]
    counts = core.tracker_counts()
    assert counts["end_rest" if called == "rest" else "end_switch"] >= 1, counts  # it ended
    assert counts["joined"] >= 1, counts  # and went on
    # Within two: the oracle calls getting into position the exercise (see above).
    assert len(sets) == 1 and abs(sets[0].reps - len(true.reps)) <= 2, (sets, len(true.reps))
    mine = [r for r in reps if r.exercise == "Squat"]
    assert {r.set for r in mine} == {sets[0].set}
    assert [r.rep for r in mine] == list(range(1, len(mine) + 1))
    # Without joining, the set is cut in two (or its halves dropped as short).
    alone = WorkoutCore(WorkoutSettings(join_seconds=0.0))
    cut = [m for _, m in replay(alone, frames("wrist-1", rec), preds) if isinstance(m, SetEvent)]
    assert len(cut) != 1 or abs(cut[0].reps - len(true.reps)) > 2, cut


def test_at_the_end_of_a_recording_parked_and_open_sets_are_published_in_order() -> None:
    """Straight from squats into jumps, the recording ending 10 s after the last squat:
    the squat set is parked (it might go on) when the jumps start; closing publishes it
    first."""
    rec = session([("rest", 5.0), ("Squat", 0.0), ("Jumping", 0.0)], seed=3)
    cut = T0 + rec.sets[0].end + 10.0
    framed = [f for f in frames("wrist-1", rec) if f.receive_time <= cut]
    voted = [p for p in oracle("wrist-1", rec) if p.window_end <= cut]
    core = WorkoutCore(WorkoutSettings())
    out = [m for _, m in replay(core, framed, voted)]
    sets = [m for m in out if isinstance(m, SetEvent)]
    assert [s.exercise for s in sets] == ["Squat", "Jumping"]
    assert [s.set for s in sets] == [1, 2]
    assert not core.devices["wrist-1"].busy


def test_a_frame_sent_again_while_samples_are_held_is_late() -> None:
    """At rest samples are held up to a second before they reach the signal; a frame sent
    again in that second (a gateway's retry, a replay) is late like any other, and the
    signal's times still only rise."""
    core = WorkoutCore(WorkoutSettings())
    for k in range(1, 4):
        core.push(frame(receive=T0 + 0.26 * k), now=T0 + 0.26 * k)
    core.push(frame(receive=T0 + 0.26 * 2), now=T0 + 0.8)  # the second one again
    for k in range(4, 9):
        core.push(frame(receive=T0 + 0.26 * k), now=T0 + 0.26 * k)
    assert core.counts["late_samples"] == 13
    times, _ = core.devices["d"].signal.history(0.0)
    assert len(times) > 25 and (np.diff(times) > 0).all()


def test_a_restart_drops_the_samples_held_from_the_old_timeline() -> None:
    """A frame stamped 9.5 s ahead (within the clock skew allowed) is held at rest; the
    device's next frames are all behind it, so after STALL_SECONDS of wall time its
    timeline restarts once, and what was held from the old one goes with it."""
    core = WorkoutCore(WorkoutSettings())
    core.push(frame(receive=T0 + 9.5), now=T0)
    for k in range(1, 41):
        core.push(frame(receive=T0 + 0.26 * k), now=T0 + 0.26 * k)
    assert core.counts["timeline_restart"] == 1
    assert core.devices["d"].newest == pytest.approx(T0 + 0.26 * 40)
    core.push(frame(receive=T0 + 0.26 * 40 + 0.1), now=T0 + 10.5)  # overlaps by 8 samples
    times, _ = core.devices["d"].signal.history(0.0)
    assert core.devices["d"].newest == pytest.approx(T0 + 0.26 * 40 + 0.1)
    assert (np.diff(times) > 0).all()
