"""The realistic simulator: uneven sets with set-up moves, pauses, partial reps and truth.

The steady simulator (the default) must stay exactly as it was: the demo model,
the gateway and their tests are built on it.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from imu_har.sim.realism import Realism
from imu_har.sim.simulation import WearableFleet, WearableSimulator, WearerProfile, random_profile
from imu_har.sim.workouts import play_workout, random_workout, true_set
from tests.support.chunks import chunk_sizes

# sha256 of the samples below made by the simulator before the realistic style existed
# (imu_har/sim at commit a4d36e2); the steady style must reproduce them bit for bit.
STEADY_SHA256 = "1aa630ef1f5416550d00b721811607ce7d0de4db7925c007070e0b48fbdd1ec5"


def test_the_steady_style_is_unchanged() -> None:
    digest = hashlib.sha256()
    sim = WearableSimulator(seed=7, rate=50.0)
    plan = [
        ("Squat", 173),
        ("rest", 60),
        ("Jumping", 131),
        ("Pushup_Incorrect", 200),
        ("Lunge", 150),
    ]
    for label, n in plan:
        x, reps = sim.next_samples(label, n)
        digest.update(x.tobytes())
        digest.update(reps.astype(np.int64).tobytes())
    fleet = WearableFleet([random_profile(np.random.default_rng(i)) for i in range(3)], 25.0, 4)
    x, reps = fleet.next_samples(["Situp", "Jumping", "rest"], 100)
    digest.update(x.tobytes())
    digest.update(reps.astype(np.int64).tobytes())
    assert digest.hexdigest() == STEADY_SHA256


def test_a_realistic_set_varies_pauses_and_starts_after_setting_up() -> None:
    durations, depths, gaps, partial, setups = [], [], [], 0, []
    for seed in range(12):
        sim = WearableSimulator(WearerProfile(), seed=seed, style="realistic")
        sim.next_samples("Squat", 1)
        plan = sim.plan
        assert plan is not None
        counted = plan.counted
        setups.append(plan.cycle_start[0] - plan.start)
        d = (plan.cycle_end - plan.cycle_start)[counted]
        durations += list(d / np.median(d))
        depths += list(plan.depth[counted])
        gaps += list(plan.cycle_start[1:] - plan.cycle_end[:-1])
        partial += int((~counted).sum())
        assert np.all(np.diff(plan.rep_ends) > 0)
    assert min(depths) >= 0.75 and max(depths) <= 1.25 and np.ptp(depths) > 0.3
    assert np.ptp(durations) > 0.3  # within +-25% of the set's pace, which drifts
    assert max(gaps) > 0.4 and np.median(gaps) < 1e-9  # mostly back to back, pauses now and then
    assert partial >= 1  # a partial repetition now and then, never counted
    assert min(setups) >= 1.5  # getting into position first


def test_the_truth_counts_completed_repetitions_only() -> None:
    def simulator() -> WearableSimulator:
        realism = Realism(partial_chance=0.5)
        return WearableSimulator(WearerProfile(), seed=2, style="realistic", realism=realism)

    rec = play_workout(simulator(), [("rest", 3.0), ("Situp", 0.0), ("rest", 3.0)])
    (truth,) = rec.sets
    assert truth.exercise == "Situp"
    same = simulator()  # the same wearer, step by step
    same.next_samples("rest", round(3.0 * 50))
    same.next_samples("Situp", 1)
    plan = same.plan
    assert plan is not None and (~plan.counted).any()  # partial repetitions happened
    assert len(truth.reps) == int(plan.counted.sum())
    assert [r.end for r in truth.reps] == pytest.approx(list(plan.rep_ends))
    # The per-sample count rises at each repetition's end and nowhere else.
    _, counts = same.next_samples("Situp", round((truth.end - same.time + 1) * 50))
    assert counts[-1] == len(truth.reps) and np.all(np.diff(counts) >= 0)


def test_tired_sets_lose_form_and_both_forms_are_one_exercise() -> None:
    forms = set()
    for seed in range(20):
        sim = WearableSimulator(WearerProfile(), seed=seed, style="realistic")
        sim.next_samples("Pushup", 1)
        assert sim.plan is not None
        found = true_set(sim.plan)
        assert found is not None and found.exercise == "Pushup"
        forms.add(tuple(r.form for r in found.reps[-3:]))
        if found.incorrect:  # fatigue: only the last ones, never the first
            assert found.reps[0].form == "correct" and found.reps[-1].form == "incorrect"
    assert any("incorrect" in f for f in forms) and any("incorrect" not in f for f in forms)


@pytest.mark.parametrize("rate", [12.5, 50.0, 200.0])
def test_chunks_give_the_same_stream(rate: float) -> None:
    profile = random_profile(np.random.default_rng(5))
    whole = WearableSimulator(profile, rate=rate, seed=11, style="realistic")
    chunked = WearableSimulator(profile, rate=rate, seed=11, style="realistic")
    for label, seconds in [("rest", 5.0), ("Lunge", 20.0), ("Jumping", 10.0)]:
        n = round(seconds * rate)
        expected, expected_reps = whole.next_samples(label, n)
        parts = [chunked.next_samples(label, k) for k in chunk_sizes(n, [1, 7, 25, 3])]
        assert np.array_equal(np.concatenate([p[0] for p in parts]), expected)
        assert np.array_equal(np.concatenate([p[1] for p in parts]), expected_reps)
        assert np.isfinite(expected).all()


def test_random_workouts_rest_between_sets_of_one_exercise() -> None:
    steps = random_workout(np.random.default_rng(3), sets=12)
    assert steps[0][0] == "rest" and steps[-1][0] == "rest"
    exercises = [label.split("_")[0] for label, _ in steps]
    for a, b in itertools.pairwise(exercises):
        assert not (a == b != "rest"), steps  # the same exercise again comes after a rest
