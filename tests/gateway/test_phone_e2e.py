"""A phone in the whole live system: a simulated wearer's motion sent as Sensor Logger, through
gateway, windower and classifier (``models/default``), predicts as well as the simulator source.

The same wearer (the first random profile of seed 1, as ``har gateway --source
sim --seed 1`` makes ``sim-001``) follows the same schedule twice at once:

- ``sim-001``: ``har gateway --source sim`` (50 Hz BLE packets), as in tests/e2e;
- ``phone-sim``: 100 Hz samples converted to the app's units and schema (iPhone
  style: ``accelerometer`` plus ``gravity``, ``gyroscope`` in rad/s,
  ``magnetometer``), one message a second in real time on ``sensor-logger``, read
  by a second gateway with ``--source phone``.

Both are scored against their schedule with the e2e harness's :func:`score`.
Measured on the shared 2-core machine (2026-12-04, other helpers' tests
running): 1.0 for the phone and 1.0 for the simulator, 122 judged windows
each. The threshold is the e2e test's 0.80, and no more than 0.10 below the
simulator source: a unit, sign or axis mix-up, or misplaced times, falls far below.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from imu_har.protocol.messages import GroundTruth
from imu_har.runtime.client import connect
from imu_har.sim.simulation import WearableSimulator, parse_schedule, schedule_segments
from imu_har.sim.wearers import random_profile
from services.ble_gateway.app import GatewaySettings, build
from tests.support import sensorlogger as sl
from tests.support.system import DEFAULT_MODEL, running_system, score

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.timeout(300)]
SCHEDULE = "Squat:15,Pushup:15,Jumping:15,Situp:15"
RATE = 100.0
MIN_ACCURACY = 0.80


def stream_phone(client: mqtt.Client, device: str, stop: threading.Event) -> list[GroundTruth]:
    """Play the schedule once as Sensor Logger messages, paced in real time; the true labels."""
    wearer = WearableSimulator(random_profile(np.random.default_rng(1)), rate=RATE, seed=1)
    start_ns = time.time_ns()
    truths, sent = [], 0
    pending: list[np.ndarray] = []
    for label, count in schedule_segments(parse_schedule(SCHEDULE), RATE):
        truths.append(GroundTruth(device=device, label=label, time=start_ns / 1e9 + sent / RATE))
        samples, _reps = wearer.next_samples(label, count)
        pending.append(samples)
        sent += count
    data = np.concatenate(pending)
    stamps = start_ns + np.round(np.arange(len(data)) * 1e9 / RATE).astype(np.int64)
    for message_id, first in enumerate(range(0, len(data), int(RATE))):
        part = slice(first, first + int(RATE))
        due = stamps[part][-1] / 1e9
        while time.time() < due and not stop.is_set():
            time.sleep(min(0.05, due - time.time()))
        payload = sl.readings(data[part], stamps[part], "ios")
        client.publish("sensor-logger", sl.encoded(sl.message(message_id, payload, device)))
    return truths


def test_a_phone_predicts_as_well_as_the_simulator(broker, run_service, tmp_path):  # type: ignore[no-untyped-def]
    with running_system(broker, tmp_path) as (observer, system):
        system.start("classifier", "--model", str(DEFAULT_MODEL))
        system.start("windower")
        system.start("gateway", "--devices", "1", "--schedule", SCHEDULE, "--seed", "1")
        phones = GatewaySettings(
            mqtt_port=broker.port,
            source="phone",
            phone_host="127.0.0.1",
            phone_https_port=0,
            phone_http_port=0,
            phone_dir=tmp_path / "phone",
        )
        run_service(*build(phones))
        client = connect(broker.host, broker.port)
        stop = threading.Event()
        try:
            truths = stream_phone(client, "phone-sim", stop)
        finally:
            stop.set()
            client.loop_stop()
            client.disconnect()
        observer.wait(
            lambda: any(
                p.window_end > truths[-1].time + 14 for p, _ in observer.predictions["phone-sim"]
            ),
            30,
            "no predictions for the end of the phone's schedule",
        )
        with observer.cond:
            phone = score(observer.predictions["phone-sim"], truths)
            sim = score(observer.predictions["sim-001"], observer.truths["sim-001"])
        summary = {
            name: (r.judged, round(r.accuracy, 3), dict(r.per_label))
            for name, r in (("phone", phone), ("sim", sim))
        }
        print(f"live accuracy (judged, label, per label): {summary}")
        assert phone.judged >= 60 and sim.judged >= 60, summary
        assert set(phone.per_label) == {"Squat", "Pushup", "Jumping", "Situp"}, summary
        assert phone.accuracy >= MIN_ACCURACY, summary
        assert phone.accuracy >= sim.accuracy - 0.10, summary
        system.stop_cleanly()
