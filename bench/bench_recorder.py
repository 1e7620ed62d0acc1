"""Recorder throughput with durability on (fsync per group commit) and off (``--no-fsync``).

Two measurements:

* ``core``: the recorder core alone — decode, dedup, append to the segment,
  one write + fsync per batch, then compaction into Parquet at stop. Rows/s of
  the recording phase, of the compaction, and overall.
* ``mqtt``: end to end through a real Mosquitto — a QoS 1 publisher, the
  recorder as its own process (``python -m services.recorder``), manual acks
  after fsync. Rows/s from the first publish until every row is recorded, and
  the time to stop (compaction + manifest).

    python -m bench.bench_recorder                 # both modes, fsync on and off
    python -m bench.bench_recorder --no-fsync      # only without fsync
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.common import report
from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.protocol.codec import Frame, encode_frame
from imu_har.protocol.commands import StartRecording, StopRecording
from imu_har.protocol.messages import RecorderStatus
from imu_har.runtime.client import Collector
from services.recorder.core import Recorder, RecorderConfig


def recorded(payload: bytes) -> int:
    """Rows written so far in the open session, from the recorder's retained status."""
    status = RecorderStatus.from_payload(payload)
    return max((s.rows for s in status.recording), default=0)


RATE = 50.0
DEVICE = "bench-1"
DATA_ROOT = os.environ.get("BENCH_DATA_ROOT")  # default: the system temp dir


def payloads(frames: int, per_frame: int, t0: float = 1.8e9) -> list[bytes]:
    """Every frame of the run, encoded up front."""
    block = np.random.default_rng(0).normal(size=(per_frame, 9)).astype(np.float32)
    return [
        encode_frame(
            Frame(DEVICE, i, t0 + (i + 1) * per_frame / RATE, RATE, block, i * per_frame / RATE)
        )
        for i in range(frames)
    ]


def bench_core(data: list[bytes], per_frame: int, batch: int, fsync: bool) -> dict[str, object]:
    """Record ``data`` through the core in batches of ``batch`` messages."""
    with tempfile.TemporaryDirectory(prefix="bench-recorder-", dir=DATA_ROOT) as tmp:
        core = Recorder(RecorderConfig(data_dir=Path(tmp), fsync=fsync))
        core.open()
        core.note_device(DEVICE, 0.0)
        core.start(StartRecording(action="start", device=DEVICE, label="Squat"), time.time())
        t0 = time.perf_counter()
        for start in range(0, len(data), batch):
            for payload in data[start : start + batch]:
                core.frame(DEVICE, payload)
                core.defer_ack(_noop)
            core.commit()
        t1 = time.perf_counter()
        result = core.stop(StopRecording(action="stop", device=DEVICE), time.time())
        t2 = time.perf_counter()
        assert result["finalized"] and result["rows"] == len(data) * per_frame, result
    rows = len(data) * per_frame
    return {
        "mode": "core",
        "fsync": fsync,
        "batch": batch,
        "rows": rows,
        "record_rows_per_s": rows / (t1 - t0),
        "compact_rows_per_s": rows / (t2 - t1),
        "overall_rows_per_s": rows / (t2 - t0),
        "commits": -(-len(data) // batch),
        "publish_rows_per_s": 0.0,
    }


def _noop() -> None:
    pass


def bench_mqtt(
    data: list[bytes], per_frame: int, fsync: bool, drain: bool = False
) -> dict[str, object]:
    """Publish ``data`` with QoS 1 to a recorder process and time until all rows are in.

    With ``drain`` the recorder is down while the frames are published (the
    broker queues them in its persistent session) and the clock runs from its
    restart: the recorder's own capacity, without the Python publisher's limit.
    """
    temp = tempfile.TemporaryDirectory(prefix="bench-recorder-", dir=DATA_ROOT)
    with MosquittoBroker() as broker, temp as tmp:
        args = [sys.executable, "-m", "services.recorder", "--data-dir", tmp]
        args += ["--mqtt-port", str(broker.port), "--client-id", "bench-recorder"]
        args += ["--log-level", "WARNING", "--status-interval", "0.2"]
        args += ["--no-require-known-device", "--fsync" if fsync else "--no-fsync"]
        proc = subprocess.Popen(args)
        client = publisher(broker)
        online = lambda m: bool(m) and b'"online"' in m[-1].payload  # noqa: E731
        try:
            status = Collector(client, topics.RECORDER_STATUS.format())
            status.wait_for(predicate=online)
            replies = Collector(client, topics.RECORDER_REPLY.format())
            command_topic = topics.RECORDER_CMD.format()
            start = b'{"action": "start", "device": "%s", "label": "Squat"}' % DEVICE.encode()
            client.publish(command_topic, start, qos=1)
            replies.wait_for(1)
            rows = len(data) * per_frame
            if drain:
                proc.terminate()
                proc.wait(30)
            t0 = time.perf_counter()
            frame_topic = topics.IMU.format(device=DEVICE)
            infos = [client.publish(frame_topic, p, qos=1) for p in data]
            infos[-1].wait_for_publish(600)
            published = time.perf_counter()
            publish_rate = rows / (published - t0)
            status.clear()
            if drain:
                proc = subprocess.Popen(args)
                status.wait_for(predicate=online, timeout=60)
                t0 = time.perf_counter()
            status.wait_for(
                timeout=600, predicate=lambda m: any(recorded(x.payload) >= rows for x in m)
            )
            t1 = time.perf_counter()
            stop = b'{"action": "stop", "device": "%s"}' % DEVICE.encode()
            client.publish(command_topic, stop, qos=1)
            replies.wait_for(2, timeout=120)
            t2 = time.perf_counter()
            assert b'"finalized":true' in replies.messages[-1].payload, replies.messages[-1].payload
        finally:
            proc.terminate()
            proc.wait(30)
            client.loop_stop()
            client.disconnect()
    return {
        "mode": "mqtt-drain" if drain else "mqtt",
        "fsync": fsync,
        "batch": 0,
        "rows": rows,
        "record_rows_per_s": rows / (t1 - t0),
        "compact_rows_per_s": rows / (t2 - t1),
        "overall_rows_per_s": rows / (t2 - t0),
        "commits": 0,
        "publish_rows_per_s": publish_rate,
    }


def publisher(broker: MosquittoBroker) -> mqtt.Client:
    """A v5 client allowed 1000 QoS 1 publishes in flight (paho's default is 20)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the core run")
    parser.add_argument("--mqtt-rows", type=int, default=200_000, help="rows through MQTT")
    parser.add_argument("--frame-samples", type=int, default=5, help="samples per frame")
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--no-fsync", action="store_true", help="only measure without fsync")
    parser.add_argument("--skip-mqtt", action="store_true")
    args = parser.parse_args()
    per = args.frame_samples
    modes = [False] if args.no_fsync else [True, False]
    core_data = payloads(args.rows // per, per)
    rows = [bench_core(core_data, per, b, f) for f in modes for b in args.batch]
    if not args.skip_mqtt:
        mqtt_data = payloads(args.mqtt_rows // per, per)
        rows += [bench_mqtt(mqtt_data, per, f) for f in modes]
        rows += [bench_mqtt(mqtt_data, per, f, drain=True) for f in modes]
    print(f"data directories under: {DATA_ROOT or tempfile.gettempdir()}")
    report("recorder", rows)


if __name__ == "__main__":
    main()
