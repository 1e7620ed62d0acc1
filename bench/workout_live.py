"""The workout benchmark's live part: the real service process and a private Mosquitto.

Simulated wearers' frames are published in real time (each when its last sample
is due, as the gateway does), the demo model's predictions a window's latency
after each window ends (as the classifier would publish them). ``har workout``
runs as its own process; a client subscribed to ``<root>/+/rep`` notes when
each repetition event arrives. Latency = arrival minus the true end of the
repetition the event overlaps most, on the wall clock.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psutil

from bench.common import CpuSample
from bench.workout_eval import Score, score
from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.protocol.codec import Frame, encode_frame
from imu_har.protocol.messages import Prediction
from imu_har.protocol.workout import RepEvent, SetEvent
from imu_har.runtime.client import connect
from training.reps import LATENCY

ROOT = topics.DEFAULT_ROOT


@dataclass
class Received:
    """Events as they arrive, with their arrival time."""

    reps: list[tuple[float, RepEvent]] = field(default_factory=list)
    sets: list[SetEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, _client, _userdata, message) -> None:  # type: ignore[no-untyped-def]
        now = time.time()
        with self.lock:
            if topics.REP.parse(message.topic, ROOT) is not None:
                self.reps.append((now, RepEvent.from_payload(message.payload)))
            else:
                self.sets.append(SetEvent.from_payload(message.payload))


def shifted(
    frames: list[Frame], preds: list[Prediction], shift: float
) -> list[tuple[float, str, bytes]]:
    """Every message of a wearer moved ``shift`` s later: ``(due, topic, payload)``."""
    out = []
    for f in frames:
        moved = Frame(
            f.device,
            f.seq,
            f.receive_time + shift,
            f.rate,
            f.samples,
            None if f.device_time is None else f.device_time + shift,
        )
        out.append(
            (moved.receive_time, topics.IMU.format(ROOT, device=f.device), encode_frame(moved))
        )
    for p in preds:
        moved_p = p.model_copy(
            update={"window_start": p.window_start + shift, "window_end": p.window_end + shift}
        )
        due = moved_p.window_end + LATENCY
        out.append((due, topics.PREDICTION.format(ROOT, device=p.device), moved_p.to_payload()))
    return out


def run_live(wearers: list, t0: float) -> tuple[dict[str, Score], dict[str, float]]:  # type: ignore[type-arg]
    """Play ``wearers`` (bench.bench_workout.Wearer, simulated from ``t0``) in real time."""
    with MosquittoBroker() as broker:
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.workout",
                "--mqtt-port",
                str(broker.port),
                "--log-level",
                "WARNING",
            ],
        )
        try:
            return _play(broker, service, wearers, t0)
        finally:
            service.terminate()
            service.wait(10)


def _play(broker, service, wearers, t0):  # type: ignore[no-untyped-def]
    received = Received()
    listener = connect(broker.host, broker.port)
    listener.on_message = received.on_message
    listener.subscribe([(topics.REP.subscription(ROOT), 1), (topics.SET.subscription(ROOT), 1)])
    publisher = connect(broker.host, broker.port)
    time.sleep(2.0)  # the service connects and subscribes
    start = time.time() + 1.0
    shift = start - t0
    plan = sorted(m for w in wearers for m in shifted(w.frames, w.predictions, shift))
    cpu = CpuSample(psutil.Process(service.pid))
    cpu.start()
    for due, topic, payload in plan:
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        publisher.publish(topic, payload, qos=0)
    time.sleep(3.0)  # the last events arrive
    usage = cpu.stop()
    listener.loop_stop()
    publisher.loop_stop()
    scores: dict[str, Score] = defaultdict(Score)
    with received.lock:
        for w in wearers:
            reps = [(at, r) for at, r in received.reps if r.device == w.device]
            sets = [s for s in received.sets if s.device == w.device]
            for name, sc in score(w.truth, sets, reps, shift + t0).items():
                scores[name].add(sc)
    return scores, usage
