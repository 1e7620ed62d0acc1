"""Real small model artifacts trained by the training code on simulator data (session-scoped)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imu_har.protocol.model_spec import load_spec
from tests.support.classifier import (
    Artifacts,
    eval_windows,
    train_tiny,
)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Artifacts]:
    """Train two tiny BiLSTMs with the training code (a few seconds each, TensorFlow)."""
    root = tmp_path_factory.mktemp("models")
    first = train_tiny(root / "first", 0)
    second = train_tiny(root / "second", 1)
    yield Artifacts(first, second, eval_windows(7, 3.0, load_spec(first)))
