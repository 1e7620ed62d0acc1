"""``har reps``: sets and repetitions of recorded sessions, by the live service's own core.

Reads the recorder's data directory (or any Parquet/CSV table with the
recorder's columns), turns every session's samples back into the frames the
gateway sent (one per recorded frame, at their recorded times) and feeds them,
with the classifier's predictions, through :class:`services.workout.core.WorkoutCore`
in arrival order — exactly what ``har workout`` does live.

Predictions come from ``--model`` (the artifact run with ONNX Runtime on
windows cut by :mod:`imu_har.windowing`, as the live windower cuts them) or,
without it, from the recorder's prediction log (``DIR/predictions``).

    har reps --data data/recordings [--model models/default] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imu_har.protocol.codec import DEFAULT_CHANNELS, DEFAULT_UNITS, Frame
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import Prediction
from imu_har.protocol.model_spec import INPUT_NAME, ONNX_FILE, OUTPUT_NAME, ModelSpec, load_spec
from imu_har.protocol.workout import RepEvent, SetEvent, WorkoutMessage
from imu_har.windowing.windows import DEFAULT_MAX_GAP, WindowSpec, cut_windows
from services.workout.core import WorkoutCore
from services.workout.settings import WorkoutSettings
from training.errors import DataError

logger = logging.getLogger(__name__)
LATENCY = 0.15  # s from a window's end to its prediction reaching the service (measured live)


class OnnxModel:
    """A model artifact run with ONNX Runtime (no TensorFlow)."""

    def __init__(self, model_dir: str | Path) -> None:
        import onnxruntime as ort  # lazy: only with --model

        path = Path(model_dir)
        try:
            self.spec: ModelSpec = load_spec(path)
        except PayloadError as exc:
            raise DataError(f"{path}: {exc.args[0]}") from exc
        if not (path / ONNX_FILE).is_file():
            raise DataError(f"{path} has no {ONNX_FILE}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )

    def predict(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        """Probabilities for windows ``x`` (n, window, channels)."""
        parts = [
            self.session.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + batch].astype(np.float32)})[0]
            for i in range(0, len(x), batch)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.spec.labels)))

    def predictions(
        self, device: str, times: np.ndarray, values: np.ndarray, channels: Sequence[str]
    ) -> list[Prediction]:
        """One prediction per window of a recording, windows as the live windower cuts them."""
        spec = self.spec
        index = {name: i for i, name in enumerate(channels)}
        missing = [c for c in spec.channels if c not in index]
        if missing:
            raise DataError(f"the recording lacks the model's channels {missing}")
        picked = values[:, [index[c] for c in spec.channels]]
        windows = cut_windows(
            picked, WindowSpec(spec.window, spec.hop, spec.rate, DEFAULT_MAX_GAP), times
        )
        if not windows:
            return []
        probs = self.predict(np.stack([w.samples for w in windows]))
        out = []
        for w, p in zip(windows, probs, strict=True):
            best = int(np.argmax(p))
            out.append(
                Prediction.model_construct(  # built from checked numbers: skip re-validation
                    device=device,
                    window_seq=w.seq,
                    window_start=w.start,
                    window_end=w.end,
                    label=spec.labels[best],
                    confidence=float(p[best]),
                    probabilities={k: float(v) for k, v in zip(spec.labels, p, strict=True)},
                    smoothed_label=spec.labels[best],
                    model=spec.name,
                    model_version=spec.version,
                    latency_ms=0.0,
                    source_time=w.end,
                    classified_at=w.end + LATENCY,
                )
            )
        return out


def frames_of(
    device: str, times: np.ndarray, values: np.ndarray, rate: float, per_frame: int = 13
) -> Iterator[Frame]:
    """Frames of ``per_frame`` samples that the core times exactly at ``times``."""
    for seq, lo in enumerate(range(0, len(times), per_frame)):
        hi = min(lo + per_frame, len(times))
        yield Frame(
            device,
            seq,
            float(times[hi - 1]),
            rate,
            values[lo:hi].astype(np.float32),
            device_time=float(times[lo]),
        )


def replay(
    core: WorkoutCore, frames: Sequence[Frame], predictions: Sequence[Prediction]
) -> list[tuple[float, WorkoutMessage]]:
    """Push frames (arriving at their last sample) and predictions (``LATENCY`` after their
    window) in arrival order; returns ``(arrival time, message)`` for every output."""
    arrivals: list[tuple[float, int, Frame | Prediction]] = [
        (f.receive_time, 0, f) for f in frames
    ] + [(p.window_end + LATENCY, 1, p) for p in predictions]
    arrivals.sort(key=lambda a: (a[0], a[1]))
    out: list[tuple[float, WorkoutMessage]] = []
    for at, _, item in arrivals:
        try:
            out += [(at, m) for m in core.push(item)]
        except PayloadError as exc:
            core.counts[f"refused_{exc.reason}"] += 1
    last = arrivals[-1][0] if arrivals else 0.0
    return out + [(last, m) for m in core.close()]


@dataclass
class Session:
    """One recorded session of one device."""

    name: str
    device: str
    label: str
    times: np.ndarray
    values: np.ndarray
    rate: float
    channels: tuple[str, ...]


def read_sessions(data: Path | pd.DataFrame) -> list[Session]:
    """Every (session, device) of a recorder data dir or table (or its rows), in time order."""
    from training.data import read_table

    table = data if isinstance(data, pd.DataFrame) else read_table(data)
    needed = {"session", "device", "time"}
    if not needed <= set(table.columns):
        raise DataError(f"{data} lacks the recorder's columns {sorted(needed)}")
    channels = tuple(c for c in DEFAULT_CHANNELS if c in table.columns)
    if len(channels) < 3:
        raise DataError(f"{data} has no accelerometer columns acc_x, acc_y, acc_z")
    out = []
    for (session, device), part in table.groupby(["session", "device"], observed=True):
        part = part.sort_values("time", kind="stable")
        rate = float(part["rate"].median()) if "rate" in part else 50.0
        label = str(part["label"].iloc[0]) if "label" in part else ""
        out.append(
            Session(
                str(session),
                str(device),
                label,
                part["time"].to_numpy(np.float64),
                part[list(channels)].to_numpy(np.float64),
                rate,
                channels,
            )
        )
    return out


def logged_predictions(data: Path, device: str, start: float, end: float) -> list[Prediction]:
    """The recorder's logged predictions of ``device`` between ``start`` and ``end``."""
    folder = data / "predictions"
    if not folder.is_dir():
        return []
    table = pd.read_parquet(folder)
    rows = table[(table["device"] == device) & table["window_end"].between(start - 5, end + 5)]
    return [
        Prediction(
            device=device,
            window_seq=int(row.window_seq),
            window_start=float(row.window_start),
            window_end=float(row.window_end),
            label=str(row.label),
            confidence=float(row.confidence),
            probabilities=json.loads(row.probabilities),
            smoothed_label=str(row.smoothed_label),
            model=str(row.model),
            model_version=str(row.model_version),
            latency_ms=float(row.latency_ms),
        )
        for row in rows.sort_values("window_end").itertuples(index=False)
    ]


def count_session(session: Session, predictions: Sequence[Prediction]) -> list[WorkoutMessage]:
    """The messages the live service would publish for one session."""
    core = WorkoutCore(WorkoutSettings())
    units = dict(zip(DEFAULT_CHANNELS, DEFAULT_UNITS, strict=True))
    frames = [
        Frame(
            f.device,
            f.seq,
            f.receive_time,
            f.rate,
            f.samples,
            f.device_time,
            session.channels,
            tuple(units[c] for c in session.channels),
        )
        for f in frames_of(session.device, session.times, session.values, session.rate)
    ]
    return [m for _, m in replay(core, frames, predictions)]


def main(argv: Sequence[str] | None = None) -> int:
    """``har reps``: print the sets and repetitions of every recorded session."""
    parser = argparse.ArgumentParser(prog="har reps", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="recorder data dir or table")
    parser.add_argument("--model", type=Path, help="model artifact (default: logged predictions)")
    parser.add_argument("--json", type=Path, help="also write every set and rep as JSON here")
    args = parser.parse_args(argv)
    try:
        model = OnnxModel(args.model) if args.model else None
        sessions = read_sessions(args.data)
        report: list[dict[str, object]] = []
        for session in sessions:
            if model is not None:
                preds = model.predictions(
                    session.device, session.times, session.values, session.channels
                )
            else:
                preds = logged_predictions(
                    args.data, session.device, session.times[0], session.times[-1]
                )
            if not preds:
                raise DataError(
                    f"session {session.name}: no predictions (give --model, or record them)"
                )
            messages = count_session(session, preds)
            report.append(_print_session(session, messages))
    except DataError as exc:
        print(f"har reps: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _print_session(session: Session, messages: Sequence[WorkoutMessage]) -> dict[str, object]:
    sets = [m for m in messages if isinstance(m, SetEvent)]
    reps = [m for m in messages if isinstance(m, RepEvent)]
    seconds = session.times[-1] - session.times[0] if len(session.times) else 0.0
    print(f"{session.name} ({session.device}, {session.label}, {seconds:.0f} s): {len(sets)} sets")
    for s in sets:
        forms = [r.form for r in reps if r.set == s.set]
        note = f", {s.incorrect} incorrect" if s.incorrect else ""
        unknown = " (form unknown)" if forms and all(f == "unknown" for f in forms) else ""
        print(
            f"  set {s.set}: {s.reps} x {s.exercise}{note}{unknown}, "
            f"{s.end - s.start:.0f} s, {s.mean_rep_seconds:.1f} s per rep"
        )
    return {
        "session": session.name,
        "device": session.device,
        "label": session.label,
        "sets": [s.model_dump() for s in sets],
        "reps": [r.model_dump() for r in reps],
    }
