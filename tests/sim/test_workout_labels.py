"""Per-sample training labels of simulated workouts (imu_har.sim.workouts.sample_labels).

The demo model learns from them that set-up moves, partial repetitions and rests
are ``rest`` and that a set is its exercise from one repetition's start to the next.
"""

from __future__ import annotations

import numpy as np

from imu_har.sim.simulation import LABELS, REST, WearableSimulator, random_profile
from imu_har.sim.workouts import (
    TrueRep,
    TrueSet,
    WorkoutRecording,
    play_workout,
    sample_labels,
    workout_recordings,
)


def _recording(sets: list[TrueSet], seconds: float = 20.0, t0: float = 3.0) -> WorkoutRecording:
    rate = 10.0
    n = round(seconds * rate)
    return WorkoutRecording(rate, np.zeros((n, 9)), np.full(n, "x", dtype=object), sets, t0)


def test_rest_outside_repetitions_and_the_exercise_from_one_start_to_the_next() -> None:
    # Times are simulator seconds: the recording starts at t0 = 3 s, sample k at 3 + k/10.
    squat = TrueSet(
        "Squat", (TrueRep(5.0, 6.0, "correct"), TrueRep(7.0, 8.0, "correct"))
    )  # 6..7 s: a pause inside the set
    labels = sample_labels(_recording([squat]))
    times = 3.0 + np.arange(len(labels)) / 10.0
    assert set(labels[times < 5.0]) == {REST}  # set-up before the first repetition
    assert set(labels[(times >= 5.0) & (times < 8.0)]) == {"Squat"}
    assert set(labels[times >= 8.0]) == {REST}  # after the last repetition ends


def test_an_incorrect_repetition_is_labelled_with_the_incorrect_class() -> None:
    pushups = TrueSet(
        "Pushup",
        (
            TrueRep(4.0, 5.0, "correct"),
            TrueRep(5.0, 6.0, "incorrect"),
            TrueRep(6.5, 7.5, "incorrect"),
        ),
    )
    labels = sample_labels(_recording([pushups]))
    times = 3.0 + np.arange(len(labels)) / 10.0
    assert set(labels[(times >= 4.0) & (times < 5.0)]) == {"Pushup"}
    assert set(labels[(times >= 5.0) & (times < 7.5)]) == {"Pushup_Incorrect"}
    assert set(labels[times >= 7.5]) == {REST}


def test_a_played_workout_labels_its_set_up_rest_and_every_repetition() -> None:
    rng = np.random.default_rng(11)
    sim = WearableSimulator(random_profile(rng), rate=25.0, rng=rng, style="realistic")
    rec = play_workout(sim, [(REST, 5.0), ("Situp_Incorrect", 0.0), (REST, 5.0), ("Squat", 0.0)])
    labels = sample_labels(rec)
    assert len(labels) == len(rec.samples)
    assert set(labels) <= set(LABELS)
    assert [s.exercise for s in rec.sets] == ["Situp", "Squat"]
    times = rec.times
    for found in rec.sets:
        # The scheduled exercise starts with set-up motion: rest until the first repetition.
        scheduled = np.array([str(x).startswith(found.exercise) for x in rec.labels])
        setup = labels[scheduled & (times < found.start)]
        assert set(setup) <= {REST}
        for rep in found.reps:
            inside = labels[(times >= rep.start) & (times < rep.end)]
            want = found.exercise + ("_Incorrect" if rep.form == "incorrect" else "")
            assert len(inside) and set(inside) == {want}
    assert set(labels[times >= rec.sets[-1].end]) == {REST}
    assert set(labels[times < rec.sets[0].start]) == {REST}


def test_workout_recordings_are_deterministic_with_one_session_per_wearer() -> None:
    a = workout_recordings(2, sets=2, rate=25.0, seed=3, first_session=40)
    b = workout_recordings(2, sets=2, rate=25.0, seed=3, first_session=40)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    sessions, labels, samples = a
    assert sorted(set(sessions)) == [40, 41]
    assert len(sessions) == len(labels) == len(samples) and samples.shape[1] == 9
    assert REST in set(labels) and len(set(labels)) > 1
