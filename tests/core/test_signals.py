"""A service stops cleanly however many stop signals arrive, and however fast.

A launcher killed with SIGKILL makes the kernel send each child its
parent-death signal once per dying launcher thread, so a service can get
several SIGTERMs within microseconds. A handler that takes a lock (such as
``threading.Event.set``) deadlocks when the second signal interrupts the first
handler inside that lock: the service then never exits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from imu_har.runtime.client import Collector

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


def run_script(script: str, *args: str) -> str:
    """Run ``script`` in a fresh interpreter (a hang fails after 30 s); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _last_state(collector: Collector) -> str | None:
    return json.loads(collector.messages[-1].payload)["state"] if collector.messages else None


SIGNAL_INSIDE_EVENT_SET = """
import signal, sys
from imu_har.runtime.service import ServiceRuntime
from imu_har.runtime.settings import MqttSettings

runtime = ServiceRuntime("sig", MqttSettings(mqtt_port=int(sys.argv[1])))


class Handler:
    def subscriptions(self): return []
    def handle_batch(self, messages): pass
    def details(self): return {}
    def close(self): pass
    def tick(self, now):
        if runtime.ready.is_set():
            # What a second SIGTERM does when it lands while the first handler is inside
            # Event.set(): the event's lock is held by this very thread.
            with runtime.stopping._cond:
                signal.raise_signal(signal.SIGTERM)


print("exit", runtime.run(Handler()), flush=True)
"""


def test_a_stop_signal_arriving_inside_a_lock_still_stops_the_service(broker) -> None:  # type: ignore[no-untyped-def]
    assert "exit 0" in run_script(SIGNAL_INSIDE_EVENT_SET, str(broker.port))


def test_a_burst_of_sigterms_stops_a_service_cleanly(broker, mqtt_client) -> None:  # type: ignore[no-untyped-def]
    statuses = Collector(mqtt_client, "har/service/windower/status")
    process = subprocess.Popen(
        [sys.executable, "-m", "imu_har.ops.cli", "windower", f"--mqtt-port={broker.port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        statuses.wait_for(predicate=lambda _: _last_state(statuses) == "online", timeout=30)
        assert _last_state(statuses) == "online"
        for _ in range(200):  # within a millisecond or two, long before the service exits
            os.kill(process.pid, signal.SIGTERM)
        assert process.wait(20) == 0
        statuses.wait_for(predicate=lambda _: _last_state(statuses) == "offline", timeout=5)
        assert _last_state(statuses) == "offline"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


INBOX_UNDER_SIGNALS = """
import signal, time
from imu_har.runtime.inbox import Inbox
signal.signal(signal.SIGALRM, lambda *_: None)
signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)  # a signal every 100 us
inbox = Inbox(max_batch=4, batch_wait=0.01)
for _ in range(100):
    assert inbox.next_batch(0.02) == []
signal.setitimer(signal.ITIMER_REAL, 0)
print("returned every time")
"""


def test_inbox_waits_end_on_time_while_signals_keep_arriving() -> None:
    """``SimpleQueue.get(timeout=...)`` would block forever here (CPython 3.11)."""
    assert "returned every time" in run_script(INBOX_UNDER_SIGNALS)
