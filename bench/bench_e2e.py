"""End-to-end throughput, latency and loss of the whole system, per number of wearables.

For each N, a private Mosquitto and the real services as child processes:
``har gateway --source sim --devices N`` (50 Hz, ``--no-truth``: real wearables
have no ground truth), ``har windower``, ``har classifier --model
models/default``, ``har workout`` (every raw frame and prediction: sets and
repetitions) and ``har recorder`` (recording nothing: it then receives only
device statuses, but logs every prediction and every rep and set event); with
``--homeassistant`` also ``har homeassistant`` (every prediction, status and
workout state, as Home Assistant state at most once a second per wearable). This
process subscribes
to every prediction and measures, over ``--seconds`` after a warm-up:

* latency: arrival of the prediction here minus its ``source_time`` (receive
  time of the newest frame of the window in the gateway), p50/p99/max;
* throughput: raw frames/s published by the gateway and taken in by the
  windower, windows/s and predictions/s, messages/s taken in by the workout
  service and its queue at the end (status counters);
* loss: per device, predictions expected from the measured time (one every
  hop / rate seconds) against received, and gaps in ``window_seq``; messages
  any service shed from a full input queue (``queue_full`` on its status);
* repetitions: arrival of each ``rep`` event here minus the ``end`` it states
  (the workout's own estimate of the repetition's end: the simulated wearers
  carry no truth here), p50/p95; ``bench_workout --live`` measures against
  the true end;
* CPU (% of one core) and RSS of every service and of Mosquitto (psutil).

``--nodelay on|both`` also measures with Nagle's algorithm off by force
(Mosquitto ``set_tcp_nodelay true`` and ``TCP_NODELAY`` set on every socket
the services open, by a shim): at low message rates Nagle plus delayed ACKs
held a small publish for up to ~40 ms per hop. Since 6b59ce2 the runtime and
the private broker do this by default, so it only matters for older checkouts.

    python -m bench.bench_e2e --devices 10 100 1000 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import psutil

from bench.common import report
from bench.rawmqtt import fast_receiver
from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol import topics
from imu_har.protocol.model_spec import load_spec
from imu_har.runtime.client import connect
from imu_har.runtime.fastrecv import RawPublish
from services.ble_gateway.packets import samples_per_packet

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "default"
RATE = 50.0  # the gateway's default sample rate
# Runs ``har <args>`` with TCP_NODELAY on every socket paho opens (Nagle off in the services).
NODELAY_SHIM = (
    "import socket, sys\n"
    "_cc = socket.create_connection\n"
    "def cc(*a, **k):\n"
    "    s = _cc(*a, **k)\n"
    "    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
    "    return s\n"
    "socket.create_connection = cc\n"
    "from imu_har.ops.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class Watch:
    """Predictions (arrival, source_time, seq per device) and the latest service statuses."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.lock = threading.Lock()
        self.measuring = False
        self.arrivals: list[float] = []
        self.sources: list[float] = []
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.seen: set[str] = set()
        self.rep_delays: list[float] = []  # arrival of a rep event - the end it states (s)
        self._rep = topics.REP.splitter(topics.DEFAULT_ROOT)
        self.status: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # predictions arrive in batches (imu_har.runtime.fastrecv): the watcher must not eat the CPU
        self.client = fast_receiver(broker.host, broker.port, self._received)
        self.status_client = connect(broker.host, broker.port)
        self.status_client.on_message = self._status
        # The services run with the default topic root (HAR_* variables are not passed on).
        self.client.subscribe(topics.PREDICTION.subscription(topics.DEFAULT_ROOT), 0)
        self.client.subscribe(topics.REP.subscription(topics.DEFAULT_ROOT), 0)
        self.status_client.subscribe(topics.SERVICE_STATUS.subscription(topics.DEFAULT_ROOT), 0)

    def _received(self, batch: list[RawPublish]) -> None:
        """Predictions (latency, seq) and rep events (delay after their end), in one batch."""
        now = time.time()
        is_rep = [self._rep(m.topic) is not None for m in batch]
        reps = [json.loads(m.payload)["end"] for m, rep in zip(batch, is_rep, strict=True) if rep]
        parsed = [json.loads(m.payload) for m, rep in zip(batch, is_rep, strict=True) if not rep]
        with self.lock:
            if self.measuring:
                self.rep_delays += [now - end for end in reps]
            for p in parsed:
                self.seen.add(p["device"])
                if self.measuring:
                    self.arrivals.append(now)
                    self.sources.append(p["source_time"])
                    self.seqs[p["device"]].append(p["window_seq"])

    def _status(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        s = json.loads(msg.payload)
        with self.lock:
            self.status[s["service"]].append(s)

    def online(self, name: str, since: float) -> bool:
        with self.lock:
            return any(
                s["state"] == "online" and s["updated_at"] >= since for s in self.status[name]
            )

    def rate(self, name: str, t0: float, t1: float, value: Any) -> float:
        """Rate of a status value between the statuses nearest to ``t0`` and ``t1``."""
        with self.lock:
            inside = [s for s in self.status[name] if t0 <= s["updated_at"] <= t1]
        if len(inside) < 2:
            return float("nan")
        a, b = inside[0], inside[-1]
        return (value(b) - value(a)) / (b["updated_at"] - a["updated_at"])

    def last(self, name: str, value: Any) -> Any:
        """``value`` of the newest status of ``name`` (None if none)."""
        with self.lock:
            return value(self.status[name][-1]) if self.status[name] else None

    def close(self) -> None:
        for client in (self.client, self.status_client):
            client.disconnect()
            client.loop_stop()


def start(
    name: str, args: list[str], port: int, logs: Path, nodelay: bool
) -> subprocess.Popen[bytes]:
    """``har <name> args`` as a child process (with TCP_NODELAY if ``nodelay``)."""
    har = (
        [sys.executable, "-c", NODELAY_SHIM]
        if nodelay
        else [sys.executable, "-m", "imu_har.ops.cli"]
    )
    cmd = [*har, name, *args, "--mqtt-port", str(port)]
    cmd += ["--status-interval", "1", "--log-level", "WARNING"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAR_")}
    with (logs / f"{name}.log").open("ab") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)


def queue(status: dict[str, Any]) -> int:
    """Messages waiting in a service's input queue, from its status."""
    return int(status["counters"]["queue_depth"])


def dropped(status: dict[str, Any]) -> int:
    """Messages a service shed because its input queue was full, from its status."""
    return int(status["counters"]["rejected"].get("queue_full", 0))


def run(
    devices: int,
    seconds: float,
    warmup: float,
    recorder: bool,
    workdir: Path,
    nodelay: bool,
    tick: float | None = None,
    workout: bool = True,
    homeassistant: bool = False,
) -> dict:
    spec = load_spec(MODEL)
    window_period = spec.hop / spec.rate
    logs = workdir / f"n{devices}"
    logs.mkdir(parents=True, exist_ok=True)
    with MosquittoBroker(extra_config="set_tcp_nodelay true\n" if nodelay else "") as broker:
        watch = Watch(broker)
        plan = {
            "classifier": ["--model", str(MODEL)],
            "windower": [],
            "workout": [],
            "recorder": ["--data-dir", str(logs / "data")],
            "gateway": [
                "--devices",
                str(devices),
                "--no-truth",
                "--seed",
                "1",
                *(["--tick", str(tick)] if tick else []),
            ],
        }
        if not recorder:
            del plan["recorder"]
        if not workout:
            del plan["workout"]
        if homeassistant:
            plan["homeassistant"] = []
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name, args in plan.items():
                since = time.time()
                procs[name] = start(name, args, broker.port, logs, nodelay)
                deadline = time.monotonic() + 90
                while not watch.online(name, since) and time.monotonic() < deadline:
                    time.sleep(0.1)
            deadline = time.monotonic() + 60 + warmup
            while len(watch.seen) < devices and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(warmup)
            processes = {n: psutil.Process(p.pid) for n, p in procs.items()}
            assert broker.process is not None
            processes["mosquitto"] = psutil.Process(broker.process.pid)
            cpu0 = {n: sum(p.cpu_times()[:2]) for n, p in processes.items()}
            bench = psutil.Process()
            bench_cpu0 = sum(bench.cpu_times()[:2])
            rss: dict[str, float] = defaultdict(float)
            with watch.lock:
                watch.measuring = True
            t0 = time.time()
            while time.time() - t0 < seconds:
                time.sleep(0.5)
                for n, p in processes.items():
                    rss[n] = max(rss[n], p.memory_info().rss / 2**20)
            with watch.lock:
                watch.measuring = False
            t1 = time.time()
            cpu = {
                n: 100 * (sum(p.cpu_times()[:2]) - cpu0[n]) / (t1 - t0)
                for n, p in processes.items()
            }
            bench_cpu = 100 * (sum(bench.cpu_times()[:2]) - bench_cpu0) / (t1 - t0)
            load = os.getloadavg()[0]
            time.sleep(1.5)  # the statuses that close the interval
            queues = {n: watch.last(n, queue) for n in ("windower", "classifier", "workout")}
            shed = {n: watch.last(n, dropped) for n in plan}
        finally:
            for proc in reversed(list(procs.values())):
                proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            watch.close()

    lat = (np.array(watch.arrivals) - np.array(watch.sources)) * 1000
    expected_each = (t1 - t0) / window_period
    received = [len(watch.seqs.get(d, [])) for d in sorted(watch.seen)]
    received += [0] * (devices - len(received))
    gaps = sum(max(s) - min(s) + 1 - len(set(s)) for s in watch.seqs.values() if s)
    counter = lambda key: lambda s: s["counters"][key]  # noqa: E731
    per_packet = samples_per_packet(247)
    frames = lambda s: s["details"].get("frames", 0)  # noqa: E731
    row = {
        "devices": devices,
        "nodelay": nodelay,
        "tick": tick,
        "frames_per_s_offered": (
            devices * math.ceil(tick * RATE / per_packet) / tick
            if tick
            else devices * RATE / per_packet
        ),
        "frames_per_s_gateway": watch.rate("gateway", t0, t1, frames),
        "frames_per_s_windower": watch.rate("windower", t0, t1, counter("messages_in")),
        "windows_per_s": watch.rate("windower", t0, t1, counter("messages_out")),
        "predictions_per_s": len(lat) / (t1 - t0),
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max_ms": float(lat.max()) if len(lat) else float("nan"),
        "expected_per_device": round(expected_each, 1),
        "received_min": min(received),
        "received_mean": float(np.mean(received)),
        "devices_silent": received.count(0),
        "seq_gaps": gaps,
        "windower_queue_end": queues["windower"],
        "classifier_queue_end": queues["classifier"],
        "workout_in_per_s": watch.rate("workout", t0, t1, counter("messages_in")),
        "workout_out_per_s": watch.rate("workout", t0, t1, counter("messages_out")),
        "workout_queue_end": queues["workout"],
        "rep_events_per_s": len(watch.rep_delays) / (t1 - t0),
        "rep_delay_p50_ms": _pct(watch.rep_delays, 50),
        "rep_delay_p95_ms": _pct(watch.rep_delays, 95),
        "queue_full": sum(n or 0 for n in shed.values()),
        "load1": load,
        "bench_client_cpu": bench_cpu,
    }
    for name in (*plan, "mosquitto"):
        row[f"{name}_cpu"] = cpu[name]
        row[f"{name}_rss_mb"] = rss[name]
    return row


def _pct(seconds: list[float], q: float) -> float:
    return float(np.percentile(seconds, q) * 1000) if seconds else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured interval")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--no-recorder", action="store_true", help="leave the recorder out")
    parser.add_argument("--no-workout", action="store_true", help="leave har workout out")
    parser.add_argument(
        "--homeassistant", action="store_true", help="also run the Home Assistant bridge"
    )
    parser.add_argument(
        "--nodelay", choices=["off", "on", "both"], default="off",
        help="Nagle off: broker set_tcp_nodelay and TCP_NODELAY on the services' sockets",
    )  # fmt: skip
    parser.add_argument(
        "--tick", type=float, help="gateway --tick (s); default: one frame per full notification"
    )
    parser.add_argument("--logs", type=Path, help="keep the services' logs here")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp_dir:
        tmp = args.logs or Path(tmp_dir)
        modes = {"off": [False], "on": [True], "both": [False, True]}[args.nodelay]
        for n in args.devices:
            for nodelay in modes:
                row = run(
                    n,
                    args.seconds,
                    args.warmup,
                    not args.no_recorder,
                    tmp,
                    nodelay,
                    args.tick,
                    workout=not args.no_workout,
                    homeassistant=args.homeassistant,
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    report("end-to-end (gateway sim -> windower -> classifier -> client; workout, recorder)", rows)


if __name__ == "__main__":
    main()
