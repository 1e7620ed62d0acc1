"""Train page under AppTest on a real broker: sessions recorded by the real recorder core.

The windows the page counts per label are compared with what training itself
cuts (``training.windows.make_windows`` on the recorded Parquet); the train and
cancel commands are read off the broker; progress comes from a retained
``TrainerStatus`` as the trainer publishes it.
"""

from __future__ import annotations

import importlib.machinery
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from imu_har.protocol import topics
from imu_har.protocol.codec import Frame, encode_frame
from imu_har.protocol.commands import ExcludeSession, StartRecording, StopRecording
from imu_har.protocol.trainer import JobProgress, TrainerStatus
from imu_har.runtime.client import Collector
from imu_har.sim.simulation import WearableSimulator
from imu_har.windowing.windows import WindowSpec
from services.recorder.core import Recorder, RecorderConfig
from services.trainer.app import build as build_trainer
from services.trainer.settings import TrainerSettings
from tests.support import publish as pub
from tests.support.dashboard import REPO, app, connection_of, texts, wait_until
from training.data import resolve_layout
from training.windows import make_windows

pytestmark = pytest.mark.broker
RATE, PER_FRAME = 50.0, 5


def record(core: Recorder, device: str, label: str, subject: str, seed: int, gap: bool) -> str:
    """A session of a simulated wearer (9 s; with ``gap``, 2 s of frames missing halfway)."""
    sim = WearableSimulator(rate=RATE, seed=seed)
    t0 = 1_795_000_000.0 + seed * 100
    core.note_device(device, t0)
    command = StartRecording(action="start", device=device, label=label, subject=subject)
    session = str(core.start(command, t0)["session"])
    for seq in range(int(9 * RATE / PER_FRAME)):
        samples, _ = sim.next_samples(label, PER_FRAME)
        if gap and 40 <= seq < 60:
            continue
        at = t0 + (seq + 1) * PER_FRAME / RATE
        frame = Frame(device, seq, at, RATE, samples, device_time=seq * PER_FRAME / RATE)
        assert core.frame(device, encode_frame(frame)) == "recorded"
    assert core.commit()
    assert core.stop(StopRecording(action="stop", device=device), t0 + 9)["finalized"]
    return session


@pytest.fixture()
def recorded(dashboard_settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Five sessions: Squat and Jumping by ann and bo (one with a gap), one excluded."""
    core = Recorder(RecorderConfig(data_dir=dashboard_settings.data_dir, fsync=False))
    assert core.open()
    made = {
        "squat-ann": record(core, "w1", "Squat", "ann", 1, gap=True),
        "squat-bo": record(core, "w2", "Squat", "bo", 2, gap=False),
        "jump-ann": record(core, "w1", "Jumping", "ann", 3, gap=False),
        "jump-bo": record(core, "w2", "Jumping", "bo", 4, gap=False),
        "excluded": record(core, "w3", "Lunge", "cy", 5, gap=False),
    }
    core.edit(ExcludeSession(action="exclude", session=made["excluded"]))
    core.close()
    return made


def windows_training_cuts(data: Path, sessions: list[str], length: int, hop: int, rate: float):  # type: ignore[no-untyped-def]
    """Windows per label that ``har train`` cuts from these sessions."""
    table = pd.read_parquet(data / "recordings")
    table = table[table["session"].isin(sessions)]
    windows = make_windows(table, resolve_layout(table), WindowSpec(length, hop, rate))
    return Counter(windows.labels.tolist())


def per_label(at) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return at.dataframe[0].value.set_index("label")


def test_counts_match_training_and_the_command_is_sent(
    dashboard_settings, recorded, mqtt_client
) -> None:
    data = dashboard_settings.data_dir
    commands = Collector(mqtt_client, topics.TRAINER_CMD.format("har"))
    spec = pub.model_spec().model_copy(update={"window": 25, "hop": 5, "rate": 12.5})
    pub.publish(mqtt_client, "har/model/spec", spec.to_payload(), retain=True)
    try:
        connection_of(dashboard_settings)
        conn = connection_of(dashboard_settings)
        wait_until(lambda: conn.store.snapshot()["model_spec"] is not None)
        at = app("train")
        assert not at.exception
        assert "trainer service is not online" in texts(at)
        # Defaults: the live model's geometry, TrainParams' architecture and epochs.
        assert at.number_input(key="train_window").value == 25
        assert at.number_input(key="train_hop").value == 5
        assert at.number_input(key="train_rate").value == 12.5
        assert at.selectbox(key="train_arch").value == "bilstm_stats"
        assert at.number_input(key="train_epochs").value == 30
        used = [v for k, v in recorded.items() if k != "excluded"]
        shown = per_label(at)
        assert set(shown.index) == {"Squat", "Jumping"}  # the excluded Lunge is not offered
        cut = windows_training_cuts(data, used, 25, 5, 12.5)
        assert shown["windows"].to_dict() == dict(cut)
        assert shown.loc["Squat", "sessions"] == 2 and shown.loc["Squat", "subjects"] == 2
        assert shown.loc["Jumping", "seconds"] == pytest.approx(2 * 8.9, abs=0.2)

        # Another geometry (the data's own rate): counted again, as training cuts it.
        at.number_input(key="train_window").set_value(40)
        at.number_input(key="train_rate").set_value(0.0).run()
        assert per_label(at)["windows"].to_dict() == dict(
            windows_training_cuts(data, used, 40, 5, RATE)
        )
        at.multiselect(key="train_subjects").set_value(["ann"]).run()
        assert per_label(at)["sessions"].to_dict() == {"Jumping": 1, "Squat": 1}
        assert "grouped validation by subject needs at least two" in texts(at)

        at.multiselect(key="train_subjects").set_value([]).run()
        at.number_input(key="train_epochs").set_value(2)
        at.text_input(key="train_name").set_value("legs").run()
        at.button(key="train_start").click().run(timeout=30)
        assert not at.exception
        assert "No reply to `train` from the trainer" in texts(at)
        sent = json.loads(commands.wait_for(1, timeout=10)[0].payload)
        assert sent["action"] == "train" and sent["name"] == "legs"
        assert sorted(sent["sessions"]) == sorted(used) and sent["cv"] == "subject"
        assert sent["params"] == {
            "arch": "bilstm_stats", "epochs": 2, "units": 50, "window": 40, "hop": 5, "rate": None,
        }  # fmt: skip

        at.text_input(key="train_name").set_value("../evil").run()
        at.button(key="train_start").click().run()
        assert "Cannot send: name" in texts(at)
        time.sleep(0.3)
        assert len(commands.messages) == 1  # refused before sending
    finally:
        pub.publish(mqtt_client, "har/model/spec", b"", retain=True)


def job(**changes: object) -> JobProgress:
    fields: dict = {
        "job": "j20261204T100000Z-abc123",
        "name": "legs",
        "state": "running",
        "phase": "cv",
        "fold": 2,
        "folds": 2,
        "epoch": 1,
        "epochs": 2,
        "elapsed": 40.0,
        "eta": 75.0,
        "started_at": time.time() - 40,
        "sessions": 4,
        "grouping": "subject",
    }
    return JobProgress.model_validate(fields | changes)


def publish_status(client, progress: JobProgress) -> None:  # type: ignore[no-untyped-def]
    status = TrainerStatus(
        state="online",
        busy=progress.state == "running",
        job=progress,
        models_dir="/models",
        data_dir="/data",
        updated_at=time.time(),
    )
    pub.publish(client, topics.TRAINER_STATUS.format("har"), status.to_payload(), retain=True)


def test_progress_cancel_and_result(dashboard_settings, recorded, mqtt_client) -> None:
    commands = Collector(mqtt_client, topics.TRAINER_CMD.format("har"))
    conn = connection_of(dashboard_settings)
    try:
        publish_status(mqtt_client, job())
        wait_until(lambda: conn.store.snapshot()["trainer_status"] is not None)
        at = app("train")
        assert not at.exception
        bar = at.get("progress")[0]
        # fold 2 of 2, epoch 1 of 2: 3 of the 6 epochs (2 folds and the final fit) done
        assert bar.proto.value == pytest.approx(100 * (0.02 + 0.95 * 3 / 6), abs=1)  # percent
        assert "fold 2/2" in bar.proto.text and "about 75 s left" in bar.proto.text
        at.button(key="train_cancel").click().run(timeout=30)
        sent = json.loads(commands.wait_for(1, timeout=10)[0].payload)
        assert sent == {"action": "cancel", "job": "j20261204T100000Z-abc123"}

        result = {"artifact": "/models/legs-0123456789ab", "cv": {"mean_accuracy": 0.875}}
        publish_status(mqtt_client, job(state="done", phase="done", eta=None, result=result))
        wait_until(lambda: conn.store.snapshot()["trainer_status"].job.state == "done")
        at.run()
        assert "Model ready: `/models/legs-0123456789ab` · grouped accuracy 0.875" in texts(at)
        assert at.get("progress")[0].proto.value == 100
        publish_status(mqtt_client, job(state="failed", phase="failed", error="[x](http://e)"))
        wait_until(lambda: conn.store.snapshot()["trainer_status"].job.state == "failed")
        at.run()
        assert "Training failed: \\[x\\]\\(http" in texts(at)  # shown as text, not a link
    finally:
        pub.publish(mqtt_client, topics.TRAINER_STATUS.format("har"), b"", retain=True)


def test_the_real_trainer_answers_and_its_refusal_is_shown(
    dashboard_settings, recorded, broker, run_service, tmp_path: Path
) -> None:
    """The trainer checks a job before it starts one: a label from one subject only cannot be
    validated by subject. The page shows its reply (no TensorFlow runs for a refusal)."""
    settings = TrainerSettings(
        mqtt_port=broker.port,
        data_dir=dashboard_settings.data_dir,
        models_dir=tmp_path / "models",
        status_interval=0.3,
    )
    trainer = run_service(*build_trainer(settings))
    conn = connection_of(dashboard_settings)
    wait_until(lambda: "trainer" in conn.store.snapshot()["services"], timeout=30)
    at = app("train")
    assert "trainer service is not online" not in texts(at)
    at.multiselect(key="train_subjects").set_value(["ann"]).run()
    at.button(key="train_start").click().run(timeout=30)
    assert not at.exception
    assert "Trainer refused `train`" in texts(at) and "subject" in texts(at), texts(at)
    assert trainer.runtime.counters.get("handler_error") == 0
    assert not list((tmp_path / "models").glob("*"))


def test_unreadable_and_vanished_sessions_are_named_and_left_out(
    dashboard_settings, recorded
) -> None:
    data = dashboard_settings.data_dir
    files = {
        name: data / json.loads((data / "sessions" / f"{s}.json").read_text())["files"][0]
        for name, s in recorded.items()
    }
    files["jump-bo"].write_bytes(b"PAR1 not a Parquet file")
    at = app("train")
    assert not at.exception
    assert "2 session(s) left out of training or unreadable" in texts(at)  # and the excluded
    assert per_label(at).loc["Jumping", "sessions"] == 1
    files["squat-bo"].unlink()  # deleted after the page listed it (the listing is cached)
    at.run()
    assert not at.exception
    assert f"Session `{recorded['squat-bo']}` cannot be read" in texts(at)
    assert per_label(at)["sessions"].to_dict() == {"Jumping": 1, "Squat": 1}


def test_no_dashboard_module_hides_a_package_the_pages_import() -> None:
    """Streamlit puts services/dashboard/ first on sys.path: a module there named like a
    top-level package hides it in the page process (a ``training.py`` here once made the Train
    page fail with "No module named 'training.params'"; the tests had the package cached)."""
    folder = REPO / "services" / "dashboard"
    path = [str(REPO)] + [p for p in sys.path if p and Path(p).resolve() != folder]
    for module in sorted(folder.glob("*.py")):
        if module.stem.startswith("__"):
            continue
        found = importlib.machinery.PathFinder.find_spec(module.stem, path)
        assert found is None or found.origin is None, f"{module.name} hides {found.origin}"


def test_the_dashboard_does_not_load_tensorflow() -> None:
    """The Train page takes its defaults from training.params, which must stay light."""
    code = (
        "import sys, services.dashboard.selection, services.dashboard.artifacts, "
        "services.dashboard.store; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
