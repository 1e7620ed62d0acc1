"""Dashboard cost: store ingest rate, memory after long runs, Live page render time.

1. ``Store.ingest`` throughput (the work done on paho's thread per message) for
   raw frames of 5 samples and for predictions, in-process, no broker.
2. RSS growth of the process after 1 million frames from 32 devices (bounded
   buffers: it should stay flat once the buffers are full).
3. Live page: time of one full AppTest run of the page with N devices streaming
   (what one refresh costs the server), against a private Mosquitto.

    python -m bench.bench_dashboard --devices 1 4 --messages 200000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import psutil

from bench.common import report
from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.runtime.client import connect
from services.dashboard.store import Store
from tests.support import publish as pub

APP = Path(__file__).resolve().parents[1] / "services" / "dashboard" / "streamlit_app.py"


def ingest_rate(kind: str, devices: int, messages: int) -> float:
    """Messages per second through Store.ingest."""
    store = Store()
    now = time.time()
    if kind == "frame":
        payloads = [
            (topics.IMU.format(device=f"d{i}"), pub.frame_payload(f"d{i}", 0, now))
            for i in range(devices)
        ]
    else:
        payloads = [
            (
                topics.PREDICTION.format(device=f"d{i}"),
                pub.prediction(f"d{i}", 0, "Squat", now).to_payload(),
            )
            for i in range(devices)
        ]
    start = time.perf_counter()
    for n in range(messages):
        topic, payload = payloads[n % devices]
        store.ingest(topic, payload, now)
    return messages / (time.perf_counter() - start)


def memory_growth(messages: int = 1_000_000, devices: int = 32) -> dict[str, float]:
    """RSS (MiB) after 10% and after all of ``messages`` frames."""
    process = psutil.Process(os.getpid())
    store = Store()
    now = time.time()
    payloads = [
        (topics.IMU.format(device=f"m{i}"), pub.frame_payload(f"m{i}", 0, now))
        for i in range(devices)
    ]
    rss = {}
    for n in range(messages):
        topic, payload = payloads[n % devices]
        store.ingest(topic, payload, now)
        if n + 1 in (messages // 10, messages):
            rss[n + 1] = process.memory_info().rss / 2**20
    first, last = rss[messages // 10], rss[messages]
    return {"rss_mb_at_10pct": round(first, 1), "rss_mb_at_end": round(last, 1)}


def render_time(devices: int, runs: int = 10) -> float:
    """Median seconds of one Live page run with ``devices`` devices publishing."""
    from streamlit.testing.v1 import AppTest

    from services.dashboard import ui

    with MosquittoBroker() as broker:
        os.environ["HAR_MQTT_PORT"] = str(broker.port)
        client = connect(broker.host, broker.port)
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        for i in range(devices):
            pub.publish_device(client, f"bench-{i}", frames=100)
        time.sleep(1.0)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
            assert not at.exception, at.exception
        client.loop_stop()
        client.disconnect()
        ui._connection.clear()
    return statistics.median(times)


def main() -> None:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    for kind in ("frame", "prediction"):
        for devices in (1, 32):
            rate = ingest_rate(kind, devices, args.messages)
            rows.append(
                {"measure": f"ingest {kind}s, {devices} devices", "value": f"{rate:,.0f}/s"}
            )
    growth = memory_growth()
    rows.append(
        {
            "measure": "RSS after 100k / 1M frames (32 devices)",
            "value": f"{growth['rss_mb_at_10pct']} / {growth['rss_mb_at_end']} MiB",
        }
    )
    for devices in args.devices:
        seconds = render_time(devices)
        rows.append(
            {"measure": f"Live page run, {devices} devices", "value": f"{seconds * 1000:.0f} ms"}
        )
    report("dashboard", rows)


if __name__ == "__main__":
    main()
