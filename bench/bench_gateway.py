"""Gateway throughput: ``--source sim``, N virtual wearables at 50 Hz, through a private Mosquitto.

Starts a private Mosquitto and ``python -m services.ble_gateway --source sim
--devices N`` as a separate process, counts the raw frames and samples that
arrive on the raw-frame topics (``<root>/<device>/imu``) over a measurement
interval (after a warm-up), and samples the gateway's and the broker's CPU and
RSS. Every sim packet is a real batched BLE packet that goes through the
gateway's decode-and-publish path.

    python -m bench.bench_gateway --devices 100 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from bench.common import measure_window, report
from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.protocol.codec import decode_frame
from imu_har.runtime.client import connect
from imu_har.runtime.fastrecv import RawPublish
from services.ble_gateway.packets import samples_per_packet

RATE = 50.0
ROOT = topics.DEFAULT_ROOT  # the gateway runs with its default topic root
STATUS_TOPIC = topics.SERVICE_STATUS.format(ROOT, service="gateway")


class FrameCounter:
    """Counts raw frames (decoding one in 50) and the gateway's own frame total (its status).

    Messages arrive in batches (:mod:`imu_har.runtime.fastrecv`) so that counting
    5,000 frames/s takes little CPU from the gateway under test.
    """

    def __init__(self) -> None:
        self.frames = self.samples = 0
        self.published = 0  # frames the gateway says it published (its service status)
        self.lock = threading.Lock()

    def on_batch(self, batch: list[RawPublish]) -> None:
        for message in batch:
            if message.topic != STATUS_TOPIC:  # subscribed: raw frames and this one status
                with self.lock:
                    self.frames += 1
                    if self.frames % 50 == 1:
                        self.samples_per_frame = len(decode_frame(message.payload).samples)
            else:
                self._status(message.payload)

    def _status(self, payload: bytes) -> None:
        details = json.loads(payload).get("details", {})
        with self.lock:
            self.published = int(details.get("frames", self.published))
            self.published_samples = int(details.get("samples", 0))
            self.published_at = time.monotonic()

    def snapshot(self) -> tuple[int, int, int, float]:
        with self.lock:
            at = getattr(self, "published_at", 0.0)
            return self.frames, self.published, getattr(self, "published_samples", 0), at


def run(devices: int, seconds: float, warmup: float, tick: float | None) -> dict[str, object]:
    """One measurement with ``devices`` simulated wearables."""
    with MosquittoBroker() as broker:
        counter = FrameCounter()
        client = connect(broker.host, broker.port, on_publishes=counter.on_batch)
        client.subscribe([(topics.IMU.subscription(ROOT), 0), (STATUS_TOPIC, 0)])
        cmd = [
            sys.executable,
            "-m",
            "services.ble_gateway",
            "--source",
            "sim",
            "--devices",
            str(devices),
            "--mqtt-port",
            str(broker.port),
            *(["--tick", str(tick)] if tick else []),
            "--log-level",
            "WARNING",
            "--status-interval",
            "1",
        ]
        gateway = subprocess.Popen(
            cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stderr=subprocess.PIPE, text=True
        )
        try:
            time.sleep(warmup)
            pids = (gateway.pid, broker.process.pid)  # type: ignore[union-attr]
            before, after, wall, gw, mosq = measure_window(pids, counter.snapshot, seconds)
            (f0, p0, s0, pt0), (f1, p1, s1, pt1) = before, after
        finally:
            gateway.terminate()
            _, err = gateway.communicate(timeout=30)
            client.loop_stop()
            client.disconnect()
    lag_lines = sum("fell" in line and "behind" in line for line in err.splitlines())
    return {
        "devices": devices,
        "published_frames_per_s": (p1 - p0) / max(pt1 - pt0, 1e-9),
        "published_samples_per_s": (s1 - s0) / max(pt1 - pt0, 1e-9),
        "expected_samples_per_s": devices * RATE,
        "received_frames_per_s": (f1 - f0) / wall,
        "expected_frames_per_s": devices * RATE / samples_per_frame(tick),
        "gateway_cpu_%": gw["cpu_percent"],
        "gateway_rss_mb": gw["rss_mb"],
        "mosquitto_cpu_%": mosq["cpu_percent"],
        "lag_warnings": lag_lines,
    }


def main() -> None:
    """Run the benchmark for each device count and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--tick", type=float, help="gateway --tick (default: one frame per full BLE notification)"
    )
    args = parser.parse_args()
    rows = [run(n, args.seconds, args.warmup, args.tick) for n in args.devices]
    size = samples_per_frame(args.tick)
    report(f"gateway --source sim (frames of {size} samples, 50 Hz per wearable)", rows)


def samples_per_frame(tick: float | None) -> int:
    """Samples per published frame: a full notification at MTU 247, or ``tick`` s of samples."""
    full = samples_per_packet(247)
    return min(full, round(RATE * tick)) if tick else full


if __name__ == "__main__":
    main()
