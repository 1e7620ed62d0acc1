"""The recorder's data directory is what ``har train --data`` reads (no broker, no TensorFlow).

The recorder writes sample rows under ``recordings/`` and, beside them, its
prediction log under ``predictions/`` (compacted on shutdown or rotation). The
training loader must window the recordings of that directory and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imu_har.protocol.codec import Frame, encode_frame
from imu_har.protocol.commands import StartRecording, StopRecording
from imu_har.protocol.messages import Prediction
from imu_har.sim.simulation import WearableFleet, WearerProfile
from services.recorder.core import Recorder, RecorderConfig
from training.api import load_windows
from training.params import TrainParams

DEVICE = "sim-001"
T0 = 1_795_000_000.0


def record(recorder: Recorder, fleet: WearableFleet, label: str, seq0: int, now: float) -> int:
    """Record 10 s of ``label`` as one session (frames of 10 samples); the next seq."""
    recorder.note_device(DEVICE, now)
    recorder.start(StartRecording(action="start", device=DEVICE, label=label), now)
    seq = seq0
    for _ in range(50):
        samples, _reps = fleet.next_samples([label], 10)
        t = T0 + seq * 0.2
        frame = Frame(DEVICE, seq, t, 50.0, samples[0].astype(np.float32), device_time=None)
        recorder.frame(DEVICE, encode_frame(frame), now=t)
        seq += 1
    recorder.commit()
    recorder.stop(StopRecording(action="stop", device=DEVICE), now + 10)
    return seq


def prediction(seq: int) -> bytes:
    p = Prediction(
        device=DEVICE, window_seq=seq, window_start=T0 + seq, window_end=T0 + seq + 2,
        label="Squat", confidence=0.9, probabilities={"Squat": 0.9, "Pushup": 0.1},
        smoothed_label="Squat", model="m", model_version="v", latency_ms=1.0,
    )  # fmt: skip
    return p.to_payload()


def test_train_reads_a_recorder_data_dir_with_its_prediction_log(tmp_path: Path) -> None:
    recorder = Recorder(RecorderConfig(data_dir=tmp_path, fsync=False))
    recorder.open()
    fleet = WearableFleet([WearerProfile()], rate=50.0, seed=0)
    seq = record(recorder, fleet, "Squat", 0, T0)
    record(recorder, fleet, "Pushup", seq, T0 + 20)
    for i in range(20):
        recorder.prediction(prediction(i), T0 + i)
    recorder.commit()
    recorder.close()  # compacts the prediction log into predictions/*.parquet
    assert list((tmp_path / "predictions").rglob("*.parquet"))
    assert len(list((tmp_path / "recordings").rglob("*.parquet"))) == 2

    params = TrainParams().with_overrides(window=50, hop=10, rate=25.0)
    windows, layout, _ = load_windows(tmp_path, params)
    assert layout.label_col == "label" and layout.group_col == "session"
    assert sorted(set(windows.labels)) == ["Pushup", "Squat"]  # nothing from predictions/
