"""The wearable simulator: shapes, determinism, continuity, physics, learnable classes."""

from __future__ import annotations

import numpy as np
import pytest

from imu_har.protocol.codec import DEFAULT_CHANNELS
from imu_har.sim.simulation import (
    ACTIVITIES,
    REST,
    WearableFleet,
    WearableSimulator,
    WearerProfile,
    parse_schedule,
    play_schedule,
    random_profile,
    random_schedule,
    schedule_segments,
    synthetic_recordings,
)
from tests.support.chunks import chunk_sizes


def test_shapes_units_and_dtypes() -> None:
    sim = WearableSimulator(WearerProfile(), rate=50.0, seed=1)
    samples, reps = sim.next_samples("Squat", 120)
    assert samples.shape == (120, 9) and samples.dtype == np.float32
    assert reps.shape == (120,) and np.issubdtype(reps.dtype, np.integer)
    assert np.isfinite(samples).all()
    # At rest the accelerometer reads about 1 g and the magnetometer about the earth field.
    rest, _ = sim.next_samples(REST, 500)
    assert np.linalg.norm(rest[100:, :3], axis=1).mean() == pytest.approx(1.0, abs=0.05)
    assert np.linalg.norm(rest[100:, 6:], axis=1).mean() == pytest.approx(50.0, abs=4.0)


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    a = WearableSimulator(seed=7).next_samples("Lunge", 200)[0]
    b = WearableSimulator(seed=7).next_samples("Lunge", 200)[0]
    c = WearableSimulator(seed=8).next_samples("Lunge", 200)[0]
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    t1 = synthetic_recordings(2, 2.0, seed=3)
    t2 = synthetic_recordings(2, 2.0, seed=3)
    assert t1.equals(t2)
    assert not t1.equals(synthetic_recordings(2, 2.0, seed=4))


def test_stream_in_chunks_equals_batch() -> None:
    profile = random_profile(np.random.default_rng(5))
    whole = WearableSimulator(profile, seed=11)
    chunked = WearableSimulator(profile, seed=11)
    plan = [("Situp", 173), ("rest", 60), ("Jumping", 131)]
    for label, n in plan:
        expected, expected_reps = whole.next_samples(label, n)
        parts = [chunked.next_samples(label, k) for k in chunk_sizes(n, [1, 7, 25, 3])]
        assert np.array_equal(np.concatenate([p[0] for p in parts]), expected)
        assert np.array_equal(np.concatenate([p[1] for p in parts]), expected_reps)


def test_reps_follow_cadence_and_reset_per_bout() -> None:
    sim = WearableSimulator(WearerProfile(), seed=0)
    _, reps = sim.next_samples("Jumping", 500)  # 10 s at ~2 Hz
    assert 17 <= reps[-1] <= 21
    assert np.all(np.diff(reps) >= 0)
    _, squat_reps = sim.next_samples("Squat", 500)  # 10 s at ~0.5 Hz, restarts at 0
    assert squat_reps[0] == 0 and 4 <= squat_reps[-1] <= 6
    _, rest_reps = sim.next_samples(REST, 100)
    assert not rest_reps.any()


def test_posture_gravity_direction() -> None:
    means = {}
    for label in ("Pushup", "Situp", "Squat", REST):
        samples, _ = WearableSimulator(WearerProfile(), seed=0).next_samples(label, 500)
        means[label] = samples[:, :3].mean(axis=0)
    assert means[REST][0] > 0.95  # upright: spine axis up
    assert means["Pushup"][2] < -0.8  # prone: chest faces down
    assert means["Situp"][2] > 0.5  # mostly lying on the back
    assert means["Squat"][0] > 0.7


def test_gyro_is_consistent_with_orientation_change() -> None:
    """Integrating gyro_y over a sit-up tracks the pitch seen by the accelerometer."""
    profile = WearerProfile(noise=0.0, acc_bias=(0, 0, 0), gyro_bias=(0, 0, 0))
    samples, _ = WearableSimulator(profile, rate=100.0, seed=0).next_samples("Situp", 400)
    pitch_acc = np.degrees(np.arctan2(samples[:, 2], samples[:, 0]))
    pitch_gyro = pitch_acc[0] + np.cumsum(samples[:, 4]) / 100.0
    # Sit-ups move the chest a little, so the accelerometer angle is only approximately pitch.
    assert np.abs(pitch_gyro - pitch_acc).max() < 2.0
    assert np.ptp(pitch_acc) > 40.0


def test_jumping_has_flight_and_impacts() -> None:
    samples, _ = WearableSimulator(WearerProfile(noise=0.2), seed=0).next_samples("Jumping", 500)
    vertical = samples[50:, 0]
    assert vertical.max() > 2.5  # landing
    assert vertical.min() < 0.3  # flight: near free fall
    assert vertical.mean() == pytest.approx(1.0, abs=0.1)


def test_incorrect_variants_differ_from_correct_ones() -> None:
    for correct, wrong in (("Pushup", "Pushup_Incorrect"), ("Situp", "Situp_Incorrect")):
        a, _ = WearableSimulator(WearerProfile(), seed=0).next_samples(correct, 1000)
        b, _ = WearableSimulator(WearerProfile(), seed=0).next_samples(wrong, 1000)
        assert np.abs(a.mean(0)[:3] - b.mean(0)[:3]).max() > 0.1 or (
            np.abs(a.std(0) - b.std(0)).max() > 5.0
        )


def test_classes_learnable_across_wearers_but_not_identical() -> None:
    """Nearest-centroid on simple features generalizes to unseen wearers, imperfectly seen."""
    table = synthetic_recordings(8, 8.0, seed=2).to_pandas()
    chans = list(DEFAULT_CHANNELS)
    feats = table.groupby(["session", "activity"])[chans].agg(["mean", "std"])
    x = feats.to_numpy()
    sessions = feats.index.get_level_values(0).to_numpy()
    labels = feats.index.get_level_values(1).to_numpy()
    scale = x.std(axis=0) + 1e-9
    train = sessions < 5
    centroids = {a: x[train & (labels == a)].mean(0) for a in ACTIVITIES}
    correct = 0
    for row, label in zip(x[~train], labels[~train], strict=True):
        best = min(centroids, key=lambda a: np.sum(((row - centroids[a]) / scale) ** 2))
        correct += best == label
    assert correct / (~train).sum() >= 0.8
    # Same activity, different wearers: the recordings are not copies of each other.
    squat = x[labels == "Squat"]
    assert (squat.std(axis=0) / scale).mean() > 0.05


def test_table_columns() -> None:
    table = synthetic_recordings(2, 1.0, rate=20.0, seed=0, labels=("Squat", "Lunge"))
    assert table.column_names == ["session", "activity", "index", "time", *DEFAULT_CHANNELS]
    assert table.num_rows == 2 * 2 * 20
    assert str(table.schema.field("acc_x").type) == "float"
    assert str(table.schema.field("time").type) == "double"
    df = table.to_pandas()
    assert set(df["activity"]) == {"Squat", "Lunge"}
    first = df[(df.session == 1) & (df.activity == "Lunge")]
    assert list(first["index"]) == list(range(20))
    assert first["time"].iloc[1] == pytest.approx(0.05)


def test_schedules() -> None:
    assert parse_schedule("Squat:20, rest:5,Lunge:2.5") == [
        ("Squat", 20.0),
        ("rest", 5.0),
        ("Lunge", 2.5),
    ]
    for bad in ("", "Squat", "Dance:5", "Squat:-1", "Squat:x"):
        with pytest.raises(ValueError):
            parse_schedule(bad)
    schedule = random_schedule(np.random.default_rng(0), ACTIVITIES, 10.0, 2.0)
    assert sorted(x for x, _ in schedule if x != REST) == sorted(ACTIVITIES)
    segments = list(schedule_segments([("Squat", 0.33), ("rest", 0.33)] * 3, 10.0))
    assert sum(n for _, n in segments) == round(6 * 0.33 * 10)
    sim = WearableSimulator(seed=0)
    samples, labels, reps = play_schedule(sim, [("Squat", 4.0), (REST, 1.0)])
    assert samples.shape == (250, 9) and list(labels[[0, 249]]) == ["Squat", REST]
    assert reps[199] >= 1 and reps[200] == 0


def test_fleet_matches_single_simulators_and_rejects_bad_labels() -> None:
    profiles = [random_profile(np.random.default_rng(i)) for i in range(3)]
    fleet = WearableFleet(profiles, seed=4)
    samples, _ = fleet.next_samples(["Squat", "Jumping", REST], 30)
    assert samples.shape == (3, 30, 9)
    with pytest.raises(ValueError, match="unknown activity"):
        fleet.next_samples(["Squat", "Dance", REST], 5)
    with pytest.raises(ValueError):
        fleet.next_samples(["Squat"], 5)
