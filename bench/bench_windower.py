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
from imu_har.broker import MosquittoBroker
from imu_har.codec import Frame, encode_frame
from imu_har.mqtt_tools import Collector, connect

RATE, PER_FRAME, LENGTH, HOP = 50.0, 5, 20, 5


class Counter:
    """Counts messages on a filter without keeping them."""

    def __init__(self, client, topic: str) -> None:  # type: ignore[no-untyped-def]
        self.count = 0
        client.message_callback_add(topic, self._on)
        client.subscribe(topic, 0)

    def _on(self, *_: object) -> None:
        self.count += 1


def run(devices: int, seconds: float, broker: MosquittoBroker) -> dict[str, object]:
    env = {**os.environ, "HAR_MQTT_PORT": str(broker.port), "HAR_STATUS_INTERVAL": "1",
           "HAR_FOLLOW_MODEL": "false", "HAR_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "services.windower", "--length", str(LENGTH),
                             "--hop", str(HOP)], env=env)
    client = connect(broker.host, broker.port)
    status = Collector(client, "har/service/windower/status")
    status.wait_for(predicate=lambda m: bool(m) and b'"online"' in m[-1].payload, timeout=20)
    windows = Counter(client, "har/+/window")
    publisher = connect(broker.host, broker.port)
    ids = [f"bench-{i:04d}" for i in range(devices)]
    rng = np.random.default_rng(0)
    block = rng.normal(size=(PER_FRAME, 9)).astype(np.float32)
    cpu = CpuSample(psutil.Process(proc.pid))
    ticks = int(seconds * RATE / PER_FRAME)
    t0, late = time.time(), 0.0
    cpu.start()
    for tick in range(ticks):
        due = t0 + tick * PER_FRAME / RATE
        now = time.time()
        if now < due:
            time.sleep(due - now)
        else:
            late = max(late, now - due)
        for device in ids:
            frame = Frame(device, tick, due, RATE, block, device_time=tick * PER_FRAME / RATE)
            publisher.publish(f"har/{device}/imu", encode_frame(frame))
    sent_at = time.time()
    expected = devices * ((ticks * PER_FRAME - LENGTH) // HOP + 1)
    while windows.count < expected and time.time() - sent_at < 10:
        time.sleep(0.1)
    usage = cpu.stop()
    elapsed = time.time() - t0
    proc.terminate()
    proc.wait(10)
    last = json.loads(status.messages[-1].payload)
    publisher.disconnect()
    client.disconnect()
    return {
        "devices": devices, "samples_per_s": devices * ticks * PER_FRAME / elapsed,
        "frames": devices * ticks, "windows_expected": expected, "windows_received": windows.count,
        "missing": expected - windows.count, "publisher_max_late_s": round(late, 3),
        "windower_cpu_percent": usage["cpu_percent"], "windower_rss_mb": usage["rss_mb"],
        "rejected": sum(last["counters"]["rejected"].values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rows = []
    with MosquittoBroker() as broker:
        for devices in args.devices:
            rows.append(run(devices, args.seconds, broker))
            print(rows[-1], flush=True)
    report("windower throughput", rows)


if __name__ == "__main__":
    threading.excepthook = lambda a: print("thread error", a.exc_value, file=sys.stderr)
    main()
