"""``har evaluate``'s counting accuracy on simulated recordings in the recorder's own format.

Realistic simulated sets are recorded by the real recorder core (Parquet parts
and manifests exactly as ``har recorder`` writes them), some with the number
of repetitions the person counted. The counts of the workout core over the
recorded files must be those it finds over the simulated frames themselves
(nothing is lost or shifted on the way through the recording), and the
accuracy must be computed against the manifests' ``reps``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imu_har.protocol.codec import DEFAULT_CHANNELS, encode_frame
from imu_har.protocol.commands import StartRecording, StopRecording, parse_recorder_command
from imu_har.protocol.workout import SetEvent
from imu_har.sim.workouts import WorkoutRecording
from services.recorder.core import Recorder, RecorderConfig
from tests.support.workout import T0, frames, session
from training.evaluation import counted_manifests, counting_accuracy, evaluate_counting
from training.reps import OnnxModel, Session, count_session

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "default"
DEVICE = "chest-1"


def record(
    core: Recorder, rec: WorkoutRecording, start: float, label: str, reps: int | None
) -> str:
    """Record the simulated set as ``har recorder`` does; the session id."""
    command = StartRecording(action="start", device=DEVICE, label=label, reps=reps)
    session_id = str(core.start(command, start)["session"])
    for frame in frames(DEVICE, rec, t0=start):
        assert core.frame(DEVICE, encode_frame(frame)) == "recorded"
    assert core.commit()
    stopped = core.stop(StopRecording(action="stop", device=DEVICE), start + rec.times[-1] + 1)
    assert stopped["finalized"], stopped
    return session_id


def found_live(rec: WorkoutRecording, start: float) -> int:
    """Repetitions the workout core finds over the simulated frames themselves."""
    times = start + rec.times
    values = rec.samples.astype(np.float64)
    live = Session("live", DEVICE, "", times, values, rec.rate, DEFAULT_CHANNELS)
    predictions = OnnxModel(MODEL).predictions(DEVICE, times, values, DEFAULT_CHANNELS)
    return sum(m.reps for m in count_session(live, predictions) if isinstance(m, SetEvent))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple]]:
    """A data dir with four sessions: two counted, one not counted, one counted but excluded."""
    data = tmp_path_factory.mktemp("data")
    core = Recorder(RecorderConfig(data_dir=data, fsync=False))
    assert core.open()
    core.note_device(DEVICE, T0)
    plan = [  # (exercise, seed, what the person counted: the truth + a miscount, or None)
        ("Situp", 1, 0),
        ("Squat", 2, 3),
        ("Lunge", 3, None),
        ("Situp", 4, 0),
    ]
    made: dict[str, tuple] = {}
    start = T0
    for exercise, seed, miscount in plan:
        rec = session([("rest", 3.0), (exercise, 0.0), ("rest", 3.0)], seed=seed)
        truth = len(rec.sets[0].reps)
        counted = None if miscount is None else truth + miscount
        session_id = record(core, rec, start, exercise, counted)
        made[session_id] = (rec, start, truth, counted)
        start += rec.times[-1] + 60
    excluded = list(made)[-1]
    edit = {"action": "exclude", "session": excluded, "excluded": True}
    core.edit(parse_recorder_command(json.dumps(edit).encode()))  # type: ignore[arg-type]
    core.close()
    return data, made


def test_counting_accuracy_of_pairs() -> None:
    report = counting_accuracy([(10, 10), (10, 11), (12, 9), (8, 8)])
    assert report == {"sessions": 4, "exact": 0.5, "within_1": 0.75, "mae": 1.0, "bias": -0.5}
    assert counting_accuracy([])["exact"] is None


def test_only_finished_counted_sessions_in_training_are_judged(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    manifests = {
        "a": {"session": "a", "reps": 12},
        "b": {"session": "b", "reps": None},  # not counted
        "c": {"session": "c", "reps": True},  # JSON true is no count
        "d": {"session": "d", "reps": -1},
        "e": {"session": "e", "reps": 5, "excluded": True},
        "f": {"session": "f", "reps": 5, "deleting": True},
        "g": {"session": "g", "reps": 0},  # nothing done is a count too
    }
    for name, manifest in manifests.items():
        (sessions / f"{name}.json").write_text(json.dumps(manifest))
    (sessions / "h.json").write_text("{not json")
    assert [m["session"] for m in counted_manifests(tmp_path)] == ["a", "g"]


def test_counting_runs_the_workout_core_over_the_recorded_sessions(recordings) -> None:  # type: ignore[no-untyped-def]
    data, made = recordings
    report = evaluate_counting(MODEL, data)
    assert report is not None
    rows = {r["session"]: r for r in report["per_session"]}
    judged = [s for s, (_, _, _, counted) in list(made.items())[:2]]
    assert sorted(rows) == sorted(judged)  # the uncounted and the excluded one are left out
    for session_id in judged:
        rec, start, truth, counted = made[session_id]
        row = rows[session_id]
        assert row["counted"] == counted and row["device"] == DEVICE
        assert row["label"] == rec.sets[0].exercise
        # the recording loses and shifts nothing: the same count as over the frames themselves
        assert row["found"] == found_live(rec, start), (row, truth)
    pairs = [(r["counted"], r["found"]) for r in report["per_session"]]
    assert {k: report[k] for k in ("sessions", "exact", "within_1", "mae", "bias")} == (
        counting_accuracy(pairs)
    )
    seen = [(r["counted"], r["found"], made[s][2]) for s, r in rows.items()]
    print(f"counted, found, truth: {seen}")


def test_no_counting_without_counted_sessions(tmp_path: Path) -> None:
    assert evaluate_counting(MODEL, tmp_path) is None  # no sessions/ at all
    assert evaluate_counting(MODEL, tmp_path / "table.parquet") is None  # a table, not a dir


@pytest.mark.tf
@pytest.mark.slow
def test_har_evaluate_reports_counting_accuracy(recordings, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from training.cli import evaluate_main

    data, _made = recordings
    out = tmp_path / "report.json"
    assert evaluate_main(["--model", str(MODEL), "--data", str(data), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "counting (2 sessions with counted reps, the workout core): exact" in printed
    counting = json.loads(out.read_text())["counting"]
    assert counting["sessions"] == 2 and len(counting["per_session"]) == 2
    assert counting == evaluate_counting(MODEL, data)
    assert evaluate_main(["--model", str(MODEL), "--data", str(data), "--no-counting"]) == 0
    assert "counting" not in capsys.readouterr().out
