"""Per-device smoothing: majority and mean over window_seq, independent of arrival order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.classifier.smoothing import UNKNOWN, Mode, Smoother

LABELS = ["A", "B", "C"]


def make_smoother(
    k: int, mode: Mode = "majority", threshold: float = 0.0, max_devices: int = 10_000
) -> Smoother:
    """A smoother over LABELS (the service passes its settings; these are the tests' values)."""
    return Smoother(LABELS, k, mode, threshold, max_devices)


def onehot(index: int, p: float = 0.9) -> np.ndarray:
    probs = np.full(3, (1 - p) / 2, np.float32)
    probs[index] = p
    return probs


def test_majority_over_last_k_windows() -> None:
    smoother = make_smoother(k=3, mode="majority")
    for seq, label in enumerate([0, 0, 1, 1, 2]):
        smoother.add("d", seq, float(seq), onehot(label))
    assert smoother.smoothed("d", 2) == "A"  # A A B
    assert smoother.smoothed("d", 3) == "B"  # A B B
    assert smoother.smoothed("d", 4) == "B"  # B B C


def test_majority_tie_goes_to_most_recent() -> None:
    smoother = make_smoother(k=4)
    for seq, label in enumerate([0, 1, 1, 0]):
        smoother.add("d", seq, float(seq), onehot(label))
    assert smoother.smoothed("d", 3) == "A"  # 2 vs 2: the latest is A


def test_mean_uses_average_probabilities() -> None:
    smoother = make_smoother(k=3, mode="mean")
    smoother.add("d", 0, 0.0, np.array([0.5, 0.4, 0.1], np.float32))
    smoother.add("d", 1, 1.0, np.array([0.5, 0.4, 0.1], np.float32))
    smoother.add("d", 2, 2.0, np.array([0.0, 0.9, 0.1], np.float32))
    # majority says A (2 of 3), the mean says B (0.567 vs 0.333)
    assert smoother.smoothed("d", 2) == "B"
    majority = make_smoother(k=3, mode="majority")
    for seq in range(3):
        majority.add("d", seq, float(seq), smoother._devices["d"].entries[seq].probs)
    assert majority.smoothed("d", 2) == "A"


def test_threshold_gives_unknown() -> None:
    smoother = make_smoother(k=2, mode="mean", threshold=0.6)
    smoother.add("d", 0, 0.0, np.array([0.5, 0.3, 0.2], np.float32))
    assert smoother.label_of(np.array([0.5, 0.3, 0.2], np.float32)) == -1
    assert smoother.smoothed("d", 0) == UNKNOWN
    smoother.add("d", 1, 1.0, np.array([0.9, 0.05, 0.05], np.float32))
    assert smoother.smoothed("d", 1) == "A"  # mean 0.7 >= 0.6


def test_devices_are_independent_and_unknown_device_is_unknown() -> None:
    smoother = make_smoother(k=3)
    smoother.add("d1", 0, 0.0, onehot(0))
    smoother.add("d2", 0, 0.0, onehot(2))
    assert smoother.smoothed("d1", 0) == "A"
    assert smoother.smoothed("d2", 0) == "C"
    assert smoother.smoothed("other", 0) == UNKNOWN


def test_missing_windows_are_not_replaced_by_older_ones() -> None:
    smoother = make_smoother(k=2)
    smoother.add("d", 0, 0.0, onehot(0))
    smoother.add("d", 5, 5.0, onehot(1))
    assert smoother.smoothed("d", 5) == "B"  # window 0 is outside 4..5


def test_windower_restart_resets_history() -> None:
    smoother = make_smoother(k=3)
    for seq in range(100):
        smoother.add("d", seq, float(seq), onehot(0))
    smoother.add("d", 0, 500.0, onehot(2))  # seq restarted, later in time
    assert smoother.smoothed("d", 0) == "C"
    assert len(smoother._devices["d"].entries) == 1


def test_history_is_bounded_and_evicted() -> None:
    smoother = make_smoother(k=3, max_devices=2)
    for seq in range(1000):
        smoother.add("d", seq, float(seq), onehot(seq % 3), now=1.0)
    assert len(smoother._devices["d"].entries) <= 2 * 3 + 8 + 1
    smoother.add("e", 0, 0.0, onehot(0), now=2.0)
    smoother.add("f", 0, 0.0, onehot(0), now=3.0)  # over max_devices: the stalest goes
    assert smoother.devices == 2 and smoother.smoothed("d", 999) == UNKNOWN
    assert smoother.evict(before=2.5) == 1 and smoother.devices == 1


def test_very_late_window_is_ignored() -> None:
    smoother = make_smoother(k=2)
    for seq in range(50):
        smoother.add("d", seq, float(seq), onehot(0))
    smoother.add("d", 3, 3.0, onehot(1))  # 46 windows late, not a restart (earlier start)
    assert 3 not in smoother._devices["d"].entries
    assert smoother.smoothed("d", 49) == "A"


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError):
        make_smoother(k=0)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 2), min_size=1, max_size=30),
    seed=st.integers(0, 10_000),
    mode=st.sampled_from(["majority", "mean"]),
)
def test_arrival_order_does_not_matter(labels: list[int], seed: int, mode: str) -> None:
    """Replicas see each other's windows in any order: smoothing depends on window_seq only.

    Every window within the kept history behind the newest one smooths identically.
    """
    rng = np.random.default_rng(seed)
    probs = [rng.dirichlet(np.ones(3)).astype(np.float32) for _ in labels]
    ordered, shuffled = make_smoother(k=4, mode=mode), make_smoother(k=4, mode=mode)  # type: ignore[arg-type]
    for seq, p in enumerate(probs):
        ordered.add("d", seq, float(seq), p)
    for seq in rng.permutation(len(probs)):
        shuffled.add("d", int(seq), float(seq), probs[int(seq)])
    keep = 2 * 4 + 8  # history kept behind the newest window
    for seq in range(max(0, len(probs) - keep + 3), len(probs)):
        assert ordered.smoothed("d", seq) == shuffled.smoothed("d", seq)
