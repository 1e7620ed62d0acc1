"""The whole system as real processes around a real Mosquitto, observed over MQTT.

:class:`System` starts ``har <service>`` child processes (logs in files), waits
for their retained ``online`` status and stops them at the end; :class:`Observer`
is one MQTT v5 client that records predictions, ground truth and service
statuses as they arrive, and sends v5 request/response commands.
:func:`truth_at` and :func:`score` compare predictions with the simulator's
ground truth.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imu_har.ops.broker import MosquittoBroker
from imu_har.protocol.messages import GroundTruth, Prediction, ServiceStatus
from imu_har.runtime.client import connect

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "default"


@contextlib.contextmanager
def persistent_broker() -> Iterator[MosquittoBroker]:
    """A private Mosquitto of its own whose sessions survive ``restart()``.

    (:class:`MosquittoBroker` keeps its persistence writable, also as root.)
    """
    with MosquittoBroker() as broker:
        yield broker


@dataclass
class Service:
    """One ``har <name>`` child process."""

    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        cmd = [sys.executable, "-m", "imu_har.ops.cli", self.name, *self.args]
        cmd += ["--mqtt-port", str(port), "--status-interval", "0.5"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HAR_")}
        # A developer's models/active.json (an activation under har up) must not change
        # which model these tests serve: they name theirs.
        env["HAR_IGNORE_ACTIVE_FILE"] = "true"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGKILL if it does not stop); the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout} s") from None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Observer:
    """An MQTT v5 client recording everything the tests look at."""

    client: mqtt.Client
    predictions: dict[str, list[tuple[Prediction, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    truths: dict[str, list[GroundTruth]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, list[ServiceStatus]] = field(default_factory=lambda: defaultdict(list))
    replies: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def attach(cls, broker: MosquittoBroker) -> Observer:
        client = connect(broker.host, broker.port, client_id=f"e2e-observer-{uuid.uuid4().hex[:6]}")
        observer = cls(client)
        client.on_message = observer._on_message
        client.on_connect = lambda c, *_: observer._subscribe(c)
        observer._subscribe(client)
        return observer

    def _subscribe(self, client: mqtt.Client) -> None:
        client.subscribe(
            [
                ("har/+/prediction", 1),
                ("har/+/truth", 1),
                ("har/service/+/status", 1),
                ("e2e/replies/#", 1),
            ]
        )

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        now, payload = time.time(), bytes(msg.payload)
        level = msg.topic.split("/")
        with self.cond:
            if level[-1] == "prediction":
                p = Prediction.from_payload(payload)
                self.predictions[p.device].append((p, now))
            elif level[-1] == "truth":
                t = GroundTruth.from_payload(payload)
                self.truths[t.device].append(t)
            elif level[-1] == "status":
                s = ServiceStatus.from_payload(payload)
                self.statuses[s.service].append(s)
            elif level[0] == "e2e":
                correlation = getattr(msg.properties, "CorrelationData", None)
                self.replies[bytes(correlation or b"")] = json.loads(msg.payload)
            self.cond.notify_all()

    def wait(self, what: Callable[[], Any], timeout: float, message: str = "") -> Any:
        """Wait until ``what()`` (called under the lock) is truthy; return it or fail."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (result := what()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout} s: {message}")
                self.cond.wait(min(remaining, 0.5))
            return result

    def online_since(self, service: str, since: float) -> bool:
        """True if ``service`` reported ``online`` after ``since`` (Unix time)."""
        return any(
            s.state == "online" and s.updated_at >= since for s in self.statuses.get(service, [])
        )

    def request(self, service: str, command: dict[str, Any], timeout: float = 30.0) -> dict:
        """Send a command with v5 response topic + correlation data; the matching reply."""
        correlation = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"e2e/replies/{service}"
        props.CorrelationData = correlation
        self.client.publish(f"har/{service}/cmd", json.dumps(command), qos=1, properties=props)
        reply: dict = self.wait(
            lambda: self.replies.get(correlation), timeout, f"no reply to {command}"
        )
        return reply

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class System:
    """Starts services as child processes; stops them all at the end."""

    def __init__(self, broker: MosquittoBroker, observer: Observer, logs: Path) -> None:
        self.broker, self.observer, self.logs = broker, observer, logs
        self.services: dict[str, Service] = {}

    def start(self, name: str, *args: str, timeout: float = 60.0) -> Service:
        """Start ``har <name> args`` and wait for its retained ``online`` status."""
        service = Service(name, list(args), self.logs / f"{name}.log")
        self.services[name] = service
        since = time.time()
        service.start(self.broker.port)
        try:
            self.observer.wait(
                lambda: (
                    self.observer.online_since(name, since)
                    or (service.process and service.process.poll() is not None)
                ),
                timeout,
                f"{name} not online",
            )
        except AssertionError:
            raise AssertionError(service.tail()) from None
        assert service.process and service.process.poll() is None, service.tail()
        return service

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every service (gateway first, so the rest can drain); exit codes."""
        return {name: svc.stop() for name, svc in self.services.items()}

    def logs_tail(self) -> str:
        return "\n".join(svc.tail() for svc in self.services.values())

    def stop_cleanly(self) -> None:
        """Stop every service and require each to exit with code 0."""
        codes = self.stop_all()
        assert codes == dict.fromkeys(codes, 0), (codes, self.logs_tail())


@contextlib.contextmanager
def running_system(broker: MosquittoBroker, logs: Path) -> Iterator[tuple[Observer, System]]:
    """An observer and a system on ``broker``; logs printed on failure, all stopped at the end."""
    observer = Observer.attach(broker)
    system = System(broker, observer, logs)
    try:
        yield observer, system
    except BaseException:
        print(system.logs_tail())
        raise
    finally:
        system.stop_all()
        observer.close()


def truth_at(truths: list[GroundTruth], t: float) -> str | None:
    """The true label at time ``t`` (the last truth taking effect at or before it)."""
    times = [x.time for x in truths]
    i = bisect.bisect_right(times, t) - 1
    return truths[i].label if i >= 0 else None


def label_changes(truths: list[GroundTruth]) -> list[float]:
    """Times at which the true label changes (repetition updates are not changes)."""
    out, last = [], None
    for x in truths:
        if x.label != last:
            out.append(x.time)
            last = x.label
    return out


@dataclass
class Score:
    """Agreement of predictions with the truth over the windows that can be judged."""

    judged: int = 0
    correct: int = 0
    smoothed_correct: int = 0
    skipped: int = 0
    per_label: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    @property
    def accuracy(self) -> float:
        return self.correct / self.judged if self.judged else 0.0

    @property
    def smoothed_accuracy(self) -> float:
        return self.smoothed_correct / self.judged if self.judged else 0.0


def score(
    predictions: list[tuple[Prediction, float]],
    truths: list[GroundTruth],
    margin: float = 0.5,
    model_version: str | None = None,
) -> Score:
    """Compare each prediction's label with the truth over its window.

    A window is judged only when one label holds from ``margin`` seconds before
    its start to its end (it does not straddle a change, allowing for the
    gateway's pacing tick between truth and sample times) and the truth is known.
    """
    result = Score()
    changes = label_changes(truths)
    for p, _arrived in predictions:
        if model_version is not None and p.model_version != model_version:
            continue
        true = truth_at(truths, p.window_end)
        lo, hi = p.window_start - margin, p.window_end + margin
        straddles = any(lo <= c <= hi for c in changes)
        if true is None or straddles or truth_at(truths, lo) != true:
            result.skipped += 1
            continue
        result.judged += 1
        result.correct += p.label == true
        result.smoothed_correct += p.smoothed_label == true
        result.per_label[true][0] += p.label == true
        result.per_label[true][1] += 1
    return result
