"""Models page under AppTest: artifacts with grouped scores, Activate and Roll back on a real
classifier (in a thread, on the real broker), hostile artifacts shown as text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imu_har.protocol.model_spec import SPEC_FILE
from services.trainer.app import build as build_trainer
from services.trainer.settings import TrainerSettings
from tests.support.classifier import start_classifier
from tests.support.dashboard import REPO, app, connection_of, metrics, texts, wait_until

pytestmark = pytest.mark.broker
LABELS = ["Jumping", "Lunge", "Pushup", "Pushup_Incorrect", "Situp", "Situp_Incorrect", "Squat"]
LABELS.append("rest")


def artifact(models: Path, name: str, version: str, **metrics: object) -> Path:
    """A loadable artifact: the demo model's files under another name, version and metrics."""
    target = models / f"{name}-{version[:12]}"
    shutil.copytree(REPO / "models" / "default", target)
    spec = json.loads((target / SPEC_FILE).read_text())
    spec.update(name=name, version=version, metrics=metrics)
    spec["training"] = {"n_windows": 420, "groups": ["s1", "s2", "s3"], "label_counts": {}}
    (target / SPEC_FILE).write_text(json.dumps(spec))
    return target


def cv_metrics() -> dict[str, object]:
    """Metrics as the trainer writes them: grouped validation, its score, training accuracy."""
    matrix = [[10 if i == j else 0 for j in range(len(LABELS))] for i in range(len(LABELS))]
    matrix[1][2] = 3
    pooled = {"accuracy": 0.8, "n_windows": 83, "labels": LABELS, "confusion_matrix": matrix}
    cv = {"k": 3, "mean_accuracy": 0.8125, "min_accuracy": 0.7, "mean_macro_f1": 0.79}
    cv |= {"pooled": pooled, "grouping": "subject", "folds": []}
    method = "grouped validation by subject, 3 folds"
    score = {"accuracy": 0.8125, "macro_f1": 0.79, "min_accuracy": 0.7, "method": method}
    return {"cv": cv, "score": score | {"n_windows": 83}, "train_accuracy": 0.999}


@pytest.fixture()
def models(dashboard_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("HAR_MODELS_DIR", str(folder))
    return folder


def page_connection(dashboard_settings, models_dir: Path):  # type: ignore[no-untyped-def]
    """The connection the pages made (their settings name ``models_dir``)."""
    return connection_of(dashboard_settings.model_copy(update={"models_dir": models_dir}))


def live_version(conn) -> str | None:  # type: ignore[no-untyped-def]
    status = conn.store.snapshot()["services"].get("classifier")
    model = status.details.get("model") if status is not None else None
    return model.get("version") if isinstance(model, dict) else None


def test_activate_and_roll_back_on_the_real_classifier(
    dashboard_settings, models: Path, broker, run_service
) -> None:
    old = artifact(models, "old", "0ld0ld0ld0ld0ld0", heldout={"accuracy": 0.5})
    new = artifact(models, "legs", "1e9s1e9s1e9s1e9s", **cv_metrics())
    (models / ".partial-x").mkdir()  # a save under way is not listed
    classifier = start_classifier(broker, run_service, old, model_root=models)
    conn = page_connection(dashboard_settings, models)
    wait_until(lambda: live_version(conn) == "0ld0ld0ld0ld0ld0", timeout=30)
    at = app("models")
    assert not at.exception
    (table,) = [d.value for d in at.dataframe if "live" in d.value.columns]
    table = table.set_index("name")
    assert set(table.index) == {"old", "legs"}
    assert bool(table.loc["old", "live"]) and not bool(table.loc["legs", "live"])
    assert table.loc["legs", "accuracy"] == 0.812  # the grouped score, rounded
    assert "train_accuracy" not in table.columns and 0.999 not in table.to_numpy().tolist()

    at.selectbox(key="models_pick").set_value(str(new)).run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Accuracy"] == "0.812" and shown["Worst fold"] == "0.700"
    assert "0.999" not in shown.values()  # never the training accuracy
    assert "grouped validation by subject, 3 folds" in texts(at)
    assert "Trained on 420 windows from 3 sessions" in texts(at)
    assert "Grouped-validation confusion matrix" in texts(at)
    confusion = at.dataframe[-1].value  # the chosen model's, below the list
    assert confusion.loc["Lunge", "Pushup"] == 3 and confusion.loc["Squat", "Squat"] == 10

    at.button(key="models_activate").click().run(timeout=90)
    assert not at.exception
    assert "Classifier: activate ok" in texts(at), texts(at)
    wait_until(lambda: live_version(conn) == "1e9s1e9s1e9s1e9s", timeout=30)
    at.run()
    assert "This model is live." in texts(at)

    at.button(key="models_rollback").click().run(timeout=90)
    assert "Classifier: roll back to ok" in texts(at), texts(at)
    wait_until(lambda: live_version(conn) == "0ld0ld0ld0ld0ld0", timeout=30)
    assert classifier.runtime.counters.get("handler_error") == 0


def test_a_refused_reload_and_broken_artifacts_are_shown(
    dashboard_settings, models: Path, broker, run_service, tmp_path: Path
) -> None:
    good = artifact(models, "good", "9009900990099009")
    other = artifact(models, "other", "0770077007700770")
    broken = models / "broken"
    broken.mkdir()
    (broken / SPEC_FILE).write_text('{"name": "![x](http://evil/p.png)"}')
    start_classifier(broker, run_service, good, model_root=tmp_path / "elsewhere")
    conn = page_connection(dashboard_settings, models)
    wait_until(lambda: live_version(conn) == "9009900990099009", timeout=30)
    # The classifier's root is elsewhere: it refuses this reload, and the page says why.
    at = app("models")
    at.selectbox(key="models_pick").set_value(str(good)).run()
    assert "This model is live." in texts(at)
    at.selectbox(key="models_pick").set_value(str(other)).run()
    assert "This model is live." not in texts(at)
    at.button(key="models_activate").click().run(timeout=90)
    assert not at.exception
    assert "Classifier refused to activate" in texts(at) and "model-root" in texts(at)
    at.selectbox(key="models_pick").set_value(str(broken.resolve())).run()
    assert not at.exception
    assert "Unreadable artifact" in texts(at)
    assert "![x]" not in texts(at)  # the hostile name is escaped text


def test_no_models_yet(dashboard_settings, models: Path) -> None:
    at = app("models")
    assert not at.exception
    assert "No trained models yet" in texts(at)


def test_the_trainer_lists_the_models_when_it_is_online(
    dashboard_settings, models: Path, broker, run_service, tmp_path: Path, monkeypatch
) -> None:
    """With the trainer online its ``list`` reply is the listing (Compose gives the dashboard
    no say over the models directory); the chosen model's details come from its spec."""
    trained = artifact(models, "legs", "1e9s1e9s1e9s1e9s", **cv_metrics())
    elsewhere = tmp_path / "not-the-trainers"
    elsewhere.mkdir()
    artifact(elsewhere, "stray", "5724957249572495")
    monkeypatch.setenv("HAR_MODELS_DIR", str(elsewhere))  # the dashboard's own: not listed
    settings = TrainerSettings(
        mqtt_port=broker.port, data_dir=tmp_path / "data", models_dir=models, status_interval=0.3
    )
    run_service(*build_trainer(settings))
    conn = page_connection(dashboard_settings, elsewhere)
    wait_until(lambda: "trainer" in conn.store.snapshot()["services"], timeout=30)
    at = app("models")
    assert not at.exception
    assert "From the trainer" in texts(at)
    (table,) = [d.value for d in at.dataframe if "live" in d.value.columns]
    assert list(table["name"]) == ["legs"] and table["accuracy"][0] == 0.812
    assert table["path"][0] == str(trained)
    assert metrics(at)["Accuracy"] == "0.812"  # the scores the trainer lists
    # A path from an MQTT reply is read only inside the dashboard's models directory.
    assert "Grouped-validation confusion matrix" not in texts(at)
    monkeypatch.setenv("HAR_MODELS_DIR", str(models))
    conn = page_connection(dashboard_settings, models)
    wait_until(lambda: "trainer" in conn.store.snapshot()["services"], timeout=30)
    at = app("models")
    assert "From the trainer" in texts(at)
    assert "Grouped-validation confusion matrix" in texts(at)
