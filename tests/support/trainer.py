"""Helpers for the trainer's tests: recorder-format sessions from the simulator, a requester."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imu_har.protocol import topics
from imu_har.protocol.codec import Frame, encode_frame
from imu_har.protocol.commands import StartRecording, StopRecording
from imu_har.sim.simulation import WearableSimulator
from services.recorder.core import Recorder, RecorderConfig
from services.trainer.settings import TrainerSettings
from tests.support.recorder_mqtt import Requester

RATE, PER_FRAME = 50.0, 5
# Tiny models: a job in seconds, not minutes (the tests check the plumbing, not accuracy).
TINY = {"epochs": 2, "units": 4, "layers": 1, "window": 25, "hop": 25, "batch_size": 64}


def record_sessions(
    data_dir: Path, sessions: list[tuple[str, str, str | None]], seconds: float = 6.0
) -> list[str]:
    """Record ``(device, label, subject)`` sessions of the simulator with the recorder's core.

    The files are exactly what ``har recorder`` writes (Parquet parts, manifests);
    returns the session ids in order.
    """
    core = Recorder(RecorderConfig(data_dir=data_dir))
    assert core.open()
    ids = []
    for i, (device, label, subject) in enumerate(sessions):
        sim = WearableSimulator(rate=RATE, seed=i)
        t0 = 1_795_000_000.0 + i * 1000
        core.note_device(device, t0)
        start = StartRecording(action="start", device=device, label=label, subject=subject)
        ids.append(str(core.start(start, t0)["session"]))
        for seq in range(int(seconds * RATE / PER_FRAME)):
            samples, _ = sim.next_samples(label, PER_FRAME)
            frame = Frame(device, seq, t0 + (seq + 1) * PER_FRAME / RATE, RATE, samples)
            assert core.frame(device, encode_frame(frame)) == "recorded"
        assert core.commit()
        assert core.stop(StopRecording(action="stop", device=device), t0 + seconds)["finalized"]
    core.close()
    return ids


def edit_manifest(data_dir: Path, session: str, **fields: Any) -> None:
    """Change fields of a session's manifest (as a relabel or exclude would)."""
    path = data_dir / "sessions" / f"{session}.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | fields))


def trainer_settings(broker: Any, tmp_path: Path, **kwargs: Any) -> TrainerSettings:
    """Trainer settings on the private broker, data in tmp_path/data, models in tmp_path/models."""
    values: dict[str, Any] = {
        "mqtt_port": broker.port,
        "data_dir": tmp_path / "data",
        "models_dir": tmp_path / "models",
        "status_interval": 0.5,
        "progress_interval": 0.2,
        "worker_threads": 1,
        "worker_nice": 0,
        "min_windows_per_label": 4,
    }
    return TrainerSettings(**(values | kwargs))


class TrainerRequester(Requester):
    """:class:`Requester` for ``<root>/trainer/cmd``."""

    command_topic = topics.TRAINER_CMD
