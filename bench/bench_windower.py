"""Windower throughput through a real Mosquitto: N devices at 50 Hz, one windower process.

Publishes frames of 5 samples (10 frames/s per device) for every device at a
steady pace, counts the windows that come back, and samples the windower's CPU
and RSS. Reports samples/s sustained and any windows missing.

    python -m bench.bench_windower --devices 1 100 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import psutil

from bench.common import CpuSample, report
from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.protocol.codec import Frame, encode_frame
from imu_har.runtime.client import Collector, connect

RATE, LENGTH, HOP = 50.0, 20, 5


class Counter:
    """Counts messages on a filter without keeping them."""

    def __init__(self, client, topic: str) -> None:  # type: ignore[no-untyped-def]
        self.count = 0
        client.message_callback_add(topic, self._on)
        client.subscribe(topic, 0)

    def _on(self, *_: object) -> None:
        self.count += 1


def encode_all(ids: list[str], ticks: int, per_frame: int, t0: float) -> list[list[bytes]]:
    """Every payload of the run, encoded up front so the load generator stays cheap."""
    block = np.random.default_rng(0).normal(size=(per_frame, 9)).astype(np.float32)
    return [
        [
            encode_frame(
                Frame(
                    d,
                    tick,
                    t0 + tick * per_frame / RATE,
                    RATE,
                    block,
                    device_time=tick * per_frame / RATE,
                )
            )
            for d in ids
        ]
        for tick in range(ticks)
    ]


def run(devices: int, seconds: float, broker: MosquittoBroker, per_frame: int) -> dict[str, object]:
    env = {
        **os.environ,
        "HAR_MQTT_PORT": str(broker.port),
        "HAR_STATUS_INTERVAL": "1",
        "HAR_FOLLOW_MODEL": "false",
        "HAR_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.windower", "--length", str(LENGTH), "--hop", str(HOP)],
        env=env,
    )
    client = connect(broker.host, broker.port)
    status = Collector(client, topics.SERVICE_STATUS.format(service="windower"))
    status.wait_for(predicate=lambda m: bool(m) and b'"online"' in m[-1].payload, timeout=20)
    windows = Counter(client, topics.WINDOW.subscription())
    publisher = connect(broker.host, broker.port)
    ids = [f"bench-{i:04d}" for i in range(devices)]
    imu_topics = [topics.IMU.format(device=d) for d in ids]
    ticks = int(seconds * RATE / per_frame)
    payloads = encode_all(ids, ticks, per_frame, time.time() + 1.0)
    cpu = CpuSample(psutil.Process(proc.pid))
    t0, late = time.time(), 0.0
    cpu.start()
    for tick in range(ticks):
        due = t0 + tick * per_frame / RATE
        now = time.time()
        if now < due:
            time.sleep(due - now)
        else:
            late = max(late, now - due)
        for topic, payload in zip(imu_topics, payloads[tick], strict=True):
            publisher.publish(topic, payload)
    sent_at = time.time()
    expected = devices * ((ticks * per_frame - LENGTH) // HOP + 1)
    while windows.count < expected and time.time() - sent_at < 10:
        time.sleep(0.1)
    usage = cpu.stop()
    elapsed = time.time() - t0
    last = json.loads(status.messages[-1].payload)
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    publisher.disconnect()
    client.disconnect()
    return {
        "devices": devices,
        "samples_per_frame": per_frame,
        "samples_per_s_offered": devices * ticks * per_frame / (sent_at - t0),
        "samples_per_s_windowed": windows.count * HOP / elapsed,
        "frames": devices * ticks,
        "windows_expected": expected,
        "windows_received": windows.count,
        "missing": expected - windows.count,
        "publisher_max_late_s": round(late, 3),
        "windower_cpu_percent": usage["cpu_percent"],
        "windower_rss_mb": usage["rss_mb"],
        "rejected": sum(last["counters"]["rejected"].values()),
        "queue_depth_end": last["counters"]["queue_depth"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--per-frame",
        type=int,
        nargs="+",
        default=[10],
        help="samples per frame (a batched BLE packet carries ~10-13)",
    )
    args = parser.parse_args()
    rows = []
    with MosquittoBroker() as broker:
        for per_frame in args.per_frame:
            for devices in args.devices:
                rows.append(run(devices, args.seconds, broker, per_frame))
                print(rows[-1], flush=True)
    report("windower throughput", rows)


if __name__ == "__main__":
    threading.excepthook = lambda a: print("thread error", a.exc_value, file=sys.stderr)
    main()
