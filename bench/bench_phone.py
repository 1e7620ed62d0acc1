"""Phone gateway throughput: N phones streaming Sensor Logger over MQTT, 100 Hz, 1 s batches.

Starts a private Mosquitto and ``python -m services.ble_gateway --source phone``
(MQTT only: the phone page and push ports off) as a separate process. This
process plays N Android phones: every second each phone publishes one message
in the app's schema (tests/support/sensorlogger.py) with 100 readings of each
of ``totalacceleration``, ``accelerometer``, ``gravity``, ``gyroscope`` and
``magnetometer`` (500 readings, about 45 KB), the phones spread evenly over the
second. It counts the raw frames and samples that arrive on the raw-frame
topics, samples the gateway's and the broker's CPU and RSS over the
measurement interval (after a warm-up), and at the end checks for loss: every
sample sent must arrive, and the gateway must have refused nothing.

    python -m bench.bench_phone --phones 200 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from bench.common import measure_window, report
from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.runtime.client import connect
from imu_har.runtime.fastrecv import RawPublish

RATE = 100  # Hz per phone, one message per second
ROOT = topics.DEFAULT_ROOT
STATUS_TOPIC = topics.SERVICE_STATUS.format(ROOT, service="gateway")
APP_TOPIC = topics.SENSOR_LOGGER.format(topics.SENSOR_LOGGER_TOPIC)
G = 9.80665
_DEVICE = topics.IMU.splitter(ROOT)
PREFIX = "@@"  # stands for the leading digits of the times: filled in once per 10 s


def bodies() -> list[str]:
    """The payload arrays of the ten seconds of a 10 s block, times as ``@@`` + 10 digits.

    Every phone sends the same motion (a slow swing); what differs per message
    is its header. Building 45 KB of JSON per message in Python would cost this
    process more CPU than the gateway under test; filling in a prefix costs little.
    """
    out = []
    for second in range(10):
        t = second + np.arange(RATE) / RATE
        swing = np.stack([np.sin(2 * t), np.cos(3 * t), 9.0 + np.sin(t)], axis=1)
        streams = {
            "totalacceleration": swing * G / 9.0,
            "accelerometer": swing * G / 9.0 - [0, 0, G],
            "gravity": np.tile([0.0, 0.0, G], (RATE, 1)),
            "gyroscope": np.stack([np.cos(t), np.sin(2 * t), 0.1 * t], axis=1),
            "magnetometer": np.stack([20 + t, -5 + 0 * t, -40 + np.sin(t)], axis=1),
        }
        suffixes = [f"{second * 10**9 + k * 10**9 // RATE:010d}" for k in range(RATE)]
        readings = [
            f'{{"name":"{name}","time":{PREFIX}{suffixes[k]},'
            f'"values":{{"x":{v[0]:.6f},"y":{v[1]:.6f},"z":{v[2]:.6f}}}}}'
            for name, values in streams.items()
            for k, v in enumerate(values)
        ]
        out.append("[" + ",".join(readings) + "]")
    return out


class Counter:
    """Raw frames and samples received (from the payload size), the gateway's rejections."""

    def __init__(self) -> None:
        self.frames = self.samples = 0
        self.rejected: dict[str, int] = {}
        self.lock = threading.Lock()

    def on_batch(self, batch: list[RawPublish]) -> None:
        for message in batch:
            if message.topic == STATUS_TOPIC:
                counters = json.loads(message.payload).get("counters", {})
                with self.lock:
                    self.rejected = dict(counters.get("rejected", {}))
                continue
            device = _DEVICE(message.topic) or ""
            samples = (len(message.payload) - 4 - len(device) - 27) // 36  # default layout, 9 ch
            with self.lock:
                self.frames += 1
                self.samples += samples

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.frames, self.samples


def play(client, phones: int, stop: threading.Event, sent: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Each phone one message a second, phones spread over the second, until ``stop``."""
    templates = bodies()
    second = int(time.time()) + 1
    while not stop.is_set():
        block, index = divmod(second, 10)
        body = templates[index].replace(PREFIX, str(block))
        for phone in range(phones):
            due = second + 1 + phone / phones  # the batch of `second` is sent after it ends
            while (wait := due - time.time()) > 0:
                time.sleep(min(wait, 0.05))
            header = f'{{"messageId":{sent[0] // phones},"sessionId":"bench","deviceId":'
            message = f'{header}"phone-{phone:03d}","payload":{body}}}'
            client.publish(APP_TOPIC, message.encode(), qos=0)
        sent[0] += phones
        second += 1


def run(phones: int, seconds: float, warmup: float) -> dict[str, object]:
    """One measurement with ``phones`` phones."""
    with MosquittoBroker() as broker, tempfile.TemporaryDirectory() as phone_dir:
        counter = Counter()
        listener = connect(broker.host, broker.port, on_publishes=counter.on_batch)
        listener.subscribe([(topics.IMU.subscription(ROOT), 0), (STATUS_TOPIC, 0)])
        cmd = [sys.executable, "-m", "services.ble_gateway", "--source", "phone"]
        cmd += ["--phone-https-port", "0", "--phone-http-port", "0", "--phone-dir", phone_dir]
        cmd += ["--phone-host", "127.0.0.1", "--mqtt-port", str(broker.port)]
        cmd += ["--log-level", "WARNING", "--status-interval", "1"]
        gateway = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        sender = connect(broker.host, broker.port)
        stop, sent = threading.Event(), [0]
        player = threading.Thread(target=play, args=(sender, phones, stop, sent), daemon=True)
        time.sleep(2.0)  # the gateway connects and subscribes
        player.start()
        try:
            time.sleep(warmup)
            pids = (gateway.pid, broker.process.pid)  # type: ignore[union-attr]
            (f0, s0), (f1, s1), wall, gw, mosq = measure_window(pids, counter.snapshot, seconds)
            stop.set()
            player.join(5)
            time.sleep(4.0)  # the last messages pass (the reorder horizon is 2 s)
            _frames, received = counter.snapshot()
        finally:
            gateway.terminate()
            gateway.wait(30)
            for client in (sender, listener):
                client.loop_stop()
                client.disconnect()
    return {
        "phones": phones,
        "frames_per_s": (f1 - f0) / wall,
        "samples_per_s": (s1 - s0) / wall,
        "expected_samples_per_s": phones * RATE,
        "gateway_cpu_%": gw["cpu_percent"],
        "gateway_rss_mb": gw["rss_mb"],
        "mosquitto_cpu_%": mosq["cpu_percent"],
        "sent_samples": sent[0] * RATE,
        "lost_samples": sent[0] * RATE - received,
        "rejected": sum(counter.rejected.values()),
    }


def main() -> None:
    """Run the benchmark for each phone count and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, nargs="+", default=[200])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    rows = [run(n, args.seconds, args.warmup) for n in args.phones]
    report("gateway --source phone (Sensor Logger over MQTT, 100 Hz, 1 s batches)", rows)


if __name__ == "__main__":
    main()
