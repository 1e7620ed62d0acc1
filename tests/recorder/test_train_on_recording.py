"""``har train`` trains on what the recorder wrote (simulated wearable, tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imu_har.ops.cli import main as har
from imu_har.protocol.codec import Frame, encode_frame
from imu_har.protocol.commands import StartRecording, StopRecording
from imu_har.sim.simulation import WearableSimulator
from services.recorder.core import Recorder, RecorderConfig

pytestmark = [pytest.mark.tf, pytest.mark.slow]
RATE, PER_FRAME = 50.0, 5


def record(core: Recorder, device: str, label: str, seed: int, seconds: float = 12.0) -> None:
    """One session of a simulated wearable doing ``label``, frame by frame."""
    sim = WearableSimulator(rate=RATE, seed=seed)
    t0 = 1_795_000_000.0 + seed * 100
    core.note_device(device, t0)
    core.start(StartRecording(action="start", device=device, label=label, subject=f"s{seed}"), t0)
    for seq in range(int(seconds * RATE / PER_FRAME)):
        samples, _ = sim.next_samples(label, PER_FRAME)
        frame = Frame(
            device,
            seq,
            t0 + (seq + 1) * PER_FRAME / RATE,
            RATE,
            samples,
            device_time=seq * PER_FRAME / RATE,
        )
        assert core.frame(device, encode_frame(frame)) == "recorded"
        if seq % 20 == 0:
            assert core.commit()
    assert core.commit()
    assert core.stop(StopRecording(action="stop", device=device), t0 + seconds)["finalized"]


def test_har_train_on_a_recorded_data_dir(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    core = Recorder(RecorderConfig(data_dir=data))
    assert core.open()
    for seed, (device, label) in enumerate(
        [("w1", "Squat"), ("w2", "Squat"), ("w1", "Jumping"), ("w2", "Jumping")]
    ):
        record(core, device, label, seed)
    out = tmp_path / "model"
    argv = ["train", "--data", str(data / "recordings"), "--out", str(out)]
    argv += ["--epochs", "1", "--units", "8", "--layers", "1", "--quiet", "--seed", "1"]
    assert har(argv) == 0, capsys.readouterr().err
    spec = json.loads((out / "spec.json").read_text())
    assert sorted(spec["labels"]) == ["Jumping", "Squat"]
    assert spec["training"]["n_recordings"] == 4
    assert spec["rate"] == RATE
