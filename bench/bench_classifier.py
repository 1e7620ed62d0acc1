"""Classifier throughput and latency through a real Mosquitto, against a Keras baseline.

For each batch limit, a ``har classifier`` process (ONNX Runtime / LiteRT, no
TensorFlow) serves windows from a separate publisher process:

* steady: windows at a fixed rate (default 1,000/s over 50 devices); latency is
  window published -> prediction received, from the ``source_time`` the
  publisher stamps into each window and the prediction echoes;
* saturated: ``--burst`` windows as fast as the publisher can send them;
  windows/s is predictions received / (last received - first published);
* sustained: ``--sustained-rate`` windows/s (default 20,000) for
  ``--sustained-seconds``: the rate held, its p99 latency and windows lost.

The publisher writes raw MQTT packets (many per socket write when they are
due together) and the receiver takes predictions in batches, so that on two
cores the harness takes little CPU from the classifier.

The baseline is a minimal service that calls Keras ``model.predict`` once per
window, measured in the same run. RSS is the peak resident memory of the
largest service process during the steady and the burst phase (sampled every
100 ms; a burst queues tens of thousands of windows inside the process). A
first table times the classifier core without MQTT (decode, check, infer,
smooth, encode) for the same batch sizes.

    python -m bench.bench_classifier --batches 1 16 64 256 --model models/default
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from bench.common import report
from bench.rawmqtt import RawPublisher, fast_receiver, publish_packet
from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.protocol.codec import Window, encode_window
from imu_har.protocol.model_spec import load_spec
from imu_har.runtime.client import Collector, connect
from imu_har.runtime.fastrecv import RawPublish

ROOT = Path(__file__).resolve().parents[1]
SOURCE_TIME = b'"source_time":'
BURST_CHUNK = 64  # windows per socket write when publishing flat out


def payloads(
    spec_window: int, channels: int, rate: float, devices: int
) -> list[tuple[str, bytearray, int]]:
    """One pre-encoded window per device, with the byte offset of its source_time field."""
    rng = np.random.default_rng(0)
    out = []
    for d in range(devices):
        device = f"bench{d:04d}"
        samples = rng.normal(0, 1, (spec_window, channels)).astype(np.float32)
        window = Window(device, 0, 1000.0, 1000.0 + (spec_window - 1) / rate, rate, samples, 1.0)
        offset = 4 + len(device) + 4 + 8 + 8  # prefix, id, seq, start, end
        out.append((topics.WINDOW.format(device=device), bytearray(encode_window(window)), offset))
    return out


def nodelay(client) -> None:  # type: ignore[no-untyped-def]
    """Nagle off on a bench client's socket (as the classifier does on its own)."""
    sock = client.socket()
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def publisher(
    port: int, shape: tuple[int, int, float], devices: int, count: int, rate: float, ready
) -> None:  # type: ignore[no-untyped-def]
    """Publish ``count`` windows round-robin over ``devices`` at ``rate``/s (0: flat out).

    Windows that are due together leave in one socket write (at most
    :data:`BURST_CHUNK`), each stamped with the time it is sent.
    """
    client = RawPublisher("127.0.0.1", port)
    items = payloads(shape[0], shape[1], shape[2], devices)
    ready.wait()
    started = time.perf_counter()
    sent = 0
    while sent < count:
        due = count if not rate else min(count, int((time.perf_counter() - started) * rate) + 1)
        if due <= sent:
            time.sleep(max(0.0, min(started + sent / rate - time.perf_counter(), 0.001)))
            continue
        chunk = []
        now = time.time()
        for i in range(sent, min(due, sent + BURST_CHUNK)):
            topic, buf, offset = items[i % devices]
            struct.pack_into("<I", buf, offset - 20, i // devices)  # window seq
            struct.pack_into("<d", buf, offset, now)
            chunk.append(publish_packet(topic, bytes(buf)))
        client.send(b"".join(chunk))
        sent += len(chunk)
    time.sleep(0.5)
    client.close()


class Receiver:
    """Counts predictions and their latency (now - echoed source_time) without JSON parsing."""

    def __init__(self, host: str, port: int) -> None:
        self.latencies: list[float] = []
        self.first = self.last = 0.0
        self.client = fast_receiver(host, port, self._on)
        self.client.subscribe(topics.PREDICTION.subscription(), 0)

    def _on(self, batch: list[RawPublish]) -> None:
        now = time.time()
        for message in batch:
            payload = message.payload
            i = payload.find(SOURCE_TIME) + len(SOURCE_TIME)
            self.latencies.append(now - float(payload[i : payload.index(b",", i)]))
        self.last = now
        if not self.first:
            self.first = now

    def reset(self) -> None:
        self.latencies, self.first, self.last = [], 0.0, 0.0

    def wait(self, count: int, idle: float = 3.0, limit: float = 120.0) -> None:
        """Until ``count`` arrived, nothing arrived for ``idle`` s, or ``limit`` s passed."""
        deadline, seen, since = time.monotonic() + limit, -1, time.monotonic()
        while len(self.latencies) < count and time.monotonic() < deadline:
            if len(self.latencies) != seen:
                seen, since = len(self.latencies), time.monotonic()
            elif time.monotonic() - since > idle:
                break
            time.sleep(0.02)


class PeakRss:
    """Samples a process's RSS every 100 ms in a thread; keeps the peak (MB)."""

    def __init__(self, pid: int) -> None:
        self.process, self.peak, self._stop = psutil.Process(pid), 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss / 2**20)
            except psutil.Error:
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def drive(
    services: list[psutil.Process],
    broker: MosquittoBroker,
    receiver: Receiver,
    shape,
    devices: int,
    count: int,
    rate: float,
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One publisher run; returns windows/s, latency percentiles (ms) and lost windows."""
    receiver.reset()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=publisher, args=(broker.port, shape, devices, count, rate, ready))
    proc.start()
    time.sleep(1.5)  # the publisher connects and encodes
    peaks = [PeakRss(p.pid) for p in services]
    cpu0 = sum(sum(p.cpu_times()[:2]) for p in services)
    started = time.time()
    ready.set()
    receiver.wait(count, idle=3.0 if rate else 10.0)
    cpu = sum(sum(p.cpu_times()[:2]) for p in services) - cpu0
    peak_rss = max(p.stop() for p in peaks)
    proc.join(30)
    got = len(receiver.latencies)
    span = (receiver.last - started) if got else float("nan")
    return {
        "windows_per_s": got / span if got else 0.0,
        "cpu_us_per_window": 1e6 * cpu / got if got else float("nan"),
        "peak_rss_mb": peak_rss,
        "p50_ms": percentile(receiver.latencies, 50),
        "p99_ms": percentile(receiver.latencies, 99),
        "lost": count - got,
    }


def start_service(args: list[str], port: int, client, client_id: str) -> subprocess.Popen:  # type: ignore[no-untyped-def, type-arg]
    env = {**os.environ, "HAR_MQTT_PORT": str(port), "HAR_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, *args, "--client-id", client_id], env=env, cwd=ROOT)
    statuses = topics.SERVICE_STATUS.subscription()
    status = Collector(client, statuses)
    mine = f'"instance":"{client_id}"'.encode()
    status.wait_for(
        timeout=120,
        predicate=lambda ms: any(b'"online"' in m.payload and mine in m.payload for m in ms),
    )
    client.unsubscribe(statuses)
    return proc


def stop_service(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--steady-rate", type=float, default=1000.0)
    parser.add_argument("--steady-seconds", type=float, default=8.0)
    parser.add_argument("--burst", type=int, default=30000)
    parser.add_argument("--sustained-rate", type=float, default=20000.0)
    parser.add_argument("--sustained-seconds", type=float, default=10.0)
    parser.add_argument("--baseline-windows", type=int, default=200)
    parser.add_argument("--batch-wait", type=float, help="classifier --batch-wait (s)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--replicas", type=int, nargs="*", default=[2], help="shared-sub runs")
    parser.add_argument(
        "--broker-nodelay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="set_tcp_nodelay on the broker (recommended for low latency)",
    )
    parser.add_argument("--baseline-service", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--client-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_service:
        baseline_service(args.baseline_service, args.client_id)
        return
    spec = load_spec(args.model)
    shape = (spec.window, len(spec.channels), spec.rate)
    report(
        "classifier core in-process (no MQTT)", in_process(args.model, args.batches, args.backend)
    )
    rows: list[dict[str, object]] = []
    with MosquittoBroker(
        extra_config="set_tcp_nodelay true\n" if args.broker_nodelay else ""
    ) as broker:
        client = connect(broker.host, broker.port)
        nodelay(client)
        receiver = Receiver(broker.host, broker.port)
        light = ["-m", "services.classifier", "--model", str(args.model), "--backend", args.backend]
        if args.batch_wait is not None:
            light += ["--batch-wait", str(args.batch_wait)]

        def phases(run):  # type: ignore[no-untyped-def]
            """Warm-up, steady, burst, sustained: one row's measurements."""
            return (
                run(500, 500.0),
                run(int(args.steady_rate * args.steady_seconds), args.steady_rate),
                run(args.burst, 0.0),
                run(int(args.sustained_rate * args.sustained_seconds), args.sustained_rate),
            )

        rows.extend(
            measure(
                f"classifier max_batch={batch}",
                [*light, "--max-batch", str(batch)],
                broker,
                client,
                receiver,
                phases,
                f"{args.steady_rate:g}/s",
                shape,
                args.devices,
            )
            for batch in args.batches
        )
        rows.extend(
            measure(
                f"{replicas} classifiers, shared subscription, max_batch=256",
                [*light, "--max-batch", "256"],
                broker,
                client,
                receiver,
                phases,
                f"{args.steady_rate:g}/s",
                shape,
                args.devices,
                replicas,
            )
            for replicas in args.replicas
        )
        if not args.no_baseline:
            baseline = ["-m", "bench.bench_classifier", "--baseline-service", str(args.model)]
            rows.append(
                measure(
                    "baseline: keras model.predict per window",
                    baseline,
                    broker,
                    client,
                    receiver,
                    lambda run: (run(20, 10.0), run(100, 10.0), run(args.baseline_windows, 0.0)),
                    "10/s",
                    shape,
                    args.devices,
                )
            )
        client.disconnect()
        receiver.client.disconnect()
    report("classifier", rows)


def measure(name, command, broker, client, receiver, plan, steady_rate, shape, devices, replicas=1):  # type: ignore[no-untyped-def]
    """Start ``replicas`` services, run ``plan`` (warm-up, steady, burst...), stop them; one row."""
    procs = []
    try:
        for i in range(replicas):
            extra = ["--share-group", "bench"] if replicas > 1 else []
            procs.append(start_service([*command, *extra], broker.port, client, f"bench-svc-{i}"))
        services = [psutil.Process(p.pid) for p in procs]

        def run(count: int, rate: float) -> dict[str, float]:
            return drive(services, broker, receiver, shape, devices, count, rate)

        phases = plan(run)
        result = row(name, phases[1], phases[2], steady_rate, *phases[3:])
    finally:
        for proc in procs:
            stop_service(proc)
    print(result, flush=True)
    return result


def in_process(model_dir: Path, batches: list[int], backend: str) -> list[dict[str, object]]:
    """Decode + check + infer + smooth + encode per window, without MQTT, per batch size."""
    from services.classifier.core import Classifier, Pending
    from services.classifier.fastpath import DeviceIds, fast_window
    from services.classifier.model import load_model
    from services.classifier.settings import ClassifierSettings

    rows: list[dict[str, object]] = []
    for batch in batches:
        settings = ClassifierSettings(backend=backend, max_batch=batch)
        model = load_model(model_dir, settings)
        core, ids = Classifier(model, settings), DeviceIds()
        spec = model.spec
        raw = [bytes(p) for _, p, _ in payloads(spec.window, len(spec.channels), spec.rate, 50)]
        n = max(batch * 8, 2048)
        started = time.perf_counter()
        for i in range(0, n, batch):
            pending = []
            for j in range(i, min(n, i + batch)):
                window = fast_window(raw[j % len(raw)], ids)
                assert window is not None
                pending.append(Pending(window, time.time()))
            core.classify(pending)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "batch": batch,
                "backend": model.backend.name,
                "windows_per_s": round(n / seconds, 1),
                "us_per_window": round(1e6 * seconds / n, 1),
            }
        )
    return rows


def baseline_service(model_dir: Path, client_id: str | None) -> None:
    """The naive classifier: Keras ``model.predict`` once per window, pydantic JSON out."""
    from imu_har.protocol.codec import decode_window
    from imu_har.protocol.messages import Prediction
    from imu_har.runtime.service import Inbound, ServiceRuntime
    from imu_har.runtime.settings import MqttSettings
    from training.artifact import load_artifact

    artifact = load_artifact(model_dir)
    spec, model = artifact.spec, artifact.model
    settings = MqttSettings(
        mqtt_port=int(os.environ["HAR_MQTT_PORT"]), client_id=client_id, log_level="WARNING"
    )
    runtime = ServiceRuntime("baseline", settings)

    class Baseline:
        def subscriptions(self) -> list[tuple[str, int]]:
            return [(topics.WINDOW.subscription(), 0)]

        def handle_batch(self, messages: list[Inbound]) -> None:
            for message in messages:
                window = decode_window(message.payload)
                probs = model.predict(window.samples[None], verbose=0)[0]
                best = int(np.argmax(probs))
                prediction = Prediction(
                    device=window.device,
                    window_seq=window.seq,
                    window_start=window.start,
                    window_end=window.end,
                    label=spec.labels[best],
                    confidence=min(1.0, float(probs[best])),
                    probabilities=dict(zip(spec.labels, map(float, probs), strict=True)),
                    smoothed_label=spec.labels[best],
                    model=spec.name,
                    model_version=spec.version,
                    latency_ms=1000 * (time.time() - message.received_at),
                    source_time=window.source_time,
                )
                runtime.publish_message(prediction, device=window.device)

        def tick(self, now: float) -> None: ...

        def details(self) -> dict[str, object]:
            return {}

        def close(self) -> None: ...

    runtime.run(Baseline())


def row(
    name: str,
    steady: dict[str, float],
    burst: dict[str, float],
    steady_rate: str,
    sustained: dict[str, float] | None = None,
) -> dict[str, object]:
    """One table row."""
    held = sustained or {}
    return {
        "service": name,
        "steady_rate": steady_rate,
        "steady_p50_ms": round(steady["p50_ms"], 2),
        "steady_p99_ms": round(steady["p99_ms"], 2),
        "steady_lost": steady["lost"],
        "sustained_windows_per_s": round(held.get("windows_per_s", float("nan")), 1),
        "sustained_p99_ms": round(held.get("p99_ms", float("nan")), 1),
        "sustained_lost": held.get("lost", "-"),
        "burst_windows_per_s": round(burst["windows_per_s"], 1),
        "burst_p50_ms": round(burst["p50_ms"], 1),
        "burst_p99_ms": round(burst["p99_ms"], 1),
        "burst_lost": burst["lost"],
        "cpu_us_per_window": round(burst["cpu_us_per_window"], 1),
        "steady_rss_mb": round(steady["peak_rss_mb"], 1),
        "burst_rss_mb": round(burst["peak_rss_mb"], 1),
    }


if __name__ == "__main__":
    main()
