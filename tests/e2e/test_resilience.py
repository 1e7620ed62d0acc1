"""Resilience of the running system: a broker restart, and a killed service under ``har up``.

* Broker restart mid-run (``broker.restart()``, down for a second): every
  service reconnects by itself (its retained status is ``online`` again),
  predictions resume for every device, and a recording session that spans
  the restart holds every frame the gateway published exactly once. The
  gateway publishes frames at QoS 1 (``--qos 1``), so frames published while
  the broker is down wait in its client; the recorder's persistent session
  keeps its queue across the restart (the broker persists sessions).
* A service killed under ``har up``: tests/deploy/test_launcher.py already
  checks that the launcher restarts a SIGKILLed windower (new PID, online,
  restart count) and that nothing outlives it. What it does not check is that
  the data flow comes back, so here the classifier is killed and predictions
  must resume from the restarted instance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from imu_har.ops.broker import MosquittoBroker, free_port
from tests.support.system import DEFAULT_MODEL, Observer, persistent_broker, running_system

pytestmark = [pytest.mark.slow, pytest.mark.broker]

DEVICES = ["sim-001", "sim-002"]
SERVICES = ["classifier", "windower", "recorder", "gateway"]


def predictions_since(observer: Observer, since: float, count: int = 3) -> bool:
    """Every device got ``count`` predictions classified after ``since``."""
    return all(
        sum(p.classified_at > since for p, _ in observer.predictions[d][-50:]) >= count
        for d in DEVICES
    )


def test_broker_restart_services_reconnect_and_recording_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with (
        persistent_broker() as broker,
        running_system(broker, tmp_path) as (observer, system),
    ):
        system.start("classifier", "--model", str(DEFAULT_MODEL))
        system.start("windower")
        system.start("recorder", "--data-dir", str(data_dir))
        system.start("gateway", "--devices", "2", "--qos", "1", "--schedule", "Jumping:60")
        observer.wait(lambda: predictions_since(observer, 0.0), 30, "no predictions")
        started = observer.request(
            "recorder", {"action": "start", "device": "sim-001", "label": "Jumping"}
        )
        assert started["ok"], started
        recording_since = time.time()
        observer.wait(lambda: predictions_since(observer, recording_since, 5), 30, "stalled")

        restarted_at = time.time()
        broker.restart(down_seconds=1.0)

        def all_back() -> bool:
            return all(observer.online_since(n, restarted_at) for n in SERVICES)

        observer.wait(all_back, 60, f"not every service of {SERVICES} back online")
        back_at = time.time()
        observer.wait(lambda: predictions_since(observer, back_at, 5), 60, "no recovery")

        stopped = observer.request("recorder", {"action": "stop", "device": "sim-001"})
        assert stopped["ok"], stopped
        system.stop_cleanly()

    files = list((data_dir / "recordings").rglob("*.parquet"))
    rows = pd.concat([pd.read_parquet(f) for f in files])
    assert len(rows) == stopped["data"]["rows"]
    assert rows["receive_time"].min() < restarted_at < rows["receive_time"].max()  # spans it
    # every frame between the first and the last recorded, each sample exactly once
    seqs = rows["seq"].astype(int)
    assert sorted(seqs.unique()) == list(range(seqs.min(), seqs.max() + 1))
    assert not rows.duplicated(["seq", "sample"]).any()
    per_frame = rows.groupby("seq")["sample"].agg(["min", "max", "count"])
    assert (per_frame["min"] == 0).all() and (per_frame["count"] == per_frame["max"] + 1).all()


def test_killed_classifier_is_restarted_by_har_up_and_predictions_resume(tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAR_")}
    env["HAR_IGNORE_ACTIVE_FILE"] = "true"  # serve --model even after a local activation
    cmd = [sys.executable, "-m", "imu_har.ops.cli", "up", "--devices", "2", "--no-dashboard"]
    cmd += ["--no-recorder", "--model", str(DEFAULT_MODEL), "--status-file", str(status_file)]
    cmd += ["--restart-delay", "0.5", "--mqtt-port", str(free_port())]
    log = (tmp_path / "up.log").open("wb")
    launcher = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    observer: Observer | None = None
    try:
        classifier = wait_online(status_file, "classifier", restarts=0)
        host, port = json.loads(status_file.read_text())["broker"].split(":")
        observer = Observer.attach(MosquittoBroker(port=int(port), host=host))
        obs = observer
        obs.wait(lambda: predictions_since(obs, 0.0), 30, "no predictions under har up")

        os.kill(int(classifier["pid"]), signal.SIGKILL)
        killed_at = time.time()
        after = wait_online(status_file, "classifier", restarts=1)
        assert after["pid"] != classifier["pid"]
        obs.wait(lambda: predictions_since(obs, killed_at, 5), 60, "predictions did not resume")
        instances = {s.instance for s in obs.statuses["classifier"] if s.updated_at > killed_at}
        assert any(str(after["pid"]) in i for i in instances), instances
    finally:
        if observer is not None:
            observer.close()
        launcher.send_signal(signal.SIGINT)
        try:
            code = launcher.wait(30)
        finally:
            launcher.kill()
            log.close()
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]


def wait_online(path: Path, name: str, restarts: int, timeout: float = 60.0) -> dict:
    """The launcher's status-file entry of ``name`` once online after ``restarts`` restarts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            services = {s["name"]: s for s in json.loads(path.read_text())["services"]}
            entry = services.get(name, {})
            if entry.get("state") == "online" and entry.get("restarts") == restarts:
                return dict(entry)
        time.sleep(0.2)
    raise AssertionError(f"{name} not online with {restarts} restarts: {path.read_text()}")
