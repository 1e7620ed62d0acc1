"""``har up``: start the system locally as supervised processes.

Starts a private Mosquitto when no broker is configured, then each service as a
child process with prefixed logs; stops everything on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from imu_har.broker import MosquittoBroker


def _pump(name: str, stream) -> None:  # type: ignore[no-untyped-def]
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:>10} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``har up``."""
    broker = None
    env = dict(os.environ)
    if not env.get("HAR_MQTT_HOST"):
        broker = MosquittoBroker(port=int(env.get("HAR_MQTT_PORT", "0")) or None).start()
        env.update(HAR_MQTT_HOST=broker.host, HAR_MQTT_PORT=str(broker.port))
        print(f"har up: private Mosquitto on {broker.host}:{broker.port}", flush=True)
    procs = {}
    for name in ("windower",):
        proc = subprocess.Popen(
            [sys.executable, "-m", "imu_har.cli", name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=_pump, args=(name, proc.stdout), daemon=True).start()
        procs[name] = proc
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.5)
    for proc in procs.values():
        proc.terminate()
    for proc in procs.values():
        proc.wait(timeout=15)
    if broker is not None:
        broker.cleanup()
    return 0
