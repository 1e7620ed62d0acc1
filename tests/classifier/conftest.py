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


@pytest.fixture(autouse=True)
def _forget_the_active_model(request: pytest.FixtureRequest) -> Iterator[None]:
    """A reload by command records the active model in the served model's directory, and a
    classifier started there serves it again: one test's reload must not choose the next
    test's model, since the session's artifacts share one directory.

    Autouse fixtures are set up first and torn down last, after ``run_service`` has
    stopped the test's classifiers (none can write a record afterwards).
    """
    yield
    if "artifacts" in request.fixturenames:
        from services.classifier.settings import ClassifierSettings

        shared: Artifacts = request.getfixturevalue("artifacts")
        name = ClassifierSettings.model_fields["active_file"].default
        (shared.first.parent / name).unlink(missing_ok=True)
