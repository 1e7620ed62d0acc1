"""No frame lost, none doubled: kill -9 of the recorder and a broker restart mid-session."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imu_har.ops.broker import MosquittoBroker
from imu_har.runtime.client import Collector, connect
from tests.support.recorder import expected_rows, make_frame, read_recordings, recorded_rows
from tests.support.recorder_mqtt import Requester, publish_frames

pytestmark = [pytest.mark.broker, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
DEV = "dur-1"


class RecorderProcess:
    """``python -m services.recorder`` as a child process with a fixed client id."""

    def __init__(self, broker: MosquittoBroker, data_dir: Path, log: Path) -> None:
        self.args = [
            sys.executable,
            "-m",
            "services.recorder",
            "--data-dir",
            str(data_dir),
            "--mqtt-port",
            str(broker.port),
            "--client-id",
            f"rec-dur-{uuid.uuid4().hex[:6]}",
            "--status-interval",
            "0.5",
            "--no-require-known-device",
        ]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, watcher: Collector) -> None:
        watcher.clear()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, cwd=REPO, stdout=log, stderr=log)

        def online(messages: list) -> bool:
            return any(json.loads(m.payload).get("state") == "online" for m in messages)

        assert online(watcher.wait_for(timeout=30, predicate=online)), self.log.read_text()

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(20)


def rows_recorded(requester: Requester) -> int:
    status = requester.send({"action": "status"}, timeout=20)["data"]
    return sum(s["rows"] for s in status["recording"]) if not status["error"] else -1


def wait_for_rows(requester: Requester, rows: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    seen = rows_recorded(requester)
    while seen < rows and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = rows_recorded(requester)
    return seen


@contextlib.contextmanager
def recorder_running(
    broker: Any, data_dir: Path, log: Path
) -> Iterator[tuple[Any, RecorderProcess, Collector, Requester]]:
    """A recorder process started and watched; killed if a test leaves it running."""
    client = connect(broker.host, broker.port)
    recorder = RecorderProcess(broker, data_dir, log)
    try:
        watcher = Collector(client, "har/service/recorder/status")
        recorder.start(watcher)
        yield client, recorder, watcher, Requester(client)
    finally:
        if recorder.process and recorder.process.poll() is None:
            recorder.process.kill()
        client.loop_stop()
        client.disconnect()


def test_kill_9_mid_stream_loses_nothing(broker: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with recorder_running(broker, data_dir, tmp_path / "recorder.log") as running:
        _client, recorder, watcher, requester = running
        session = requester.send({"action": "start", "device": DEV, "label": "Jumping"})
        assert session["ok"], session
        total = 2400
        stream = threading.Thread(target=_stream, args=(broker, range(total)), daemon=True)
        stream.start()
        assert wait_for_rows(requester, 2000) >= 2000  # well inside the stream
        recorder.kill()
        stream.join(120)
        assert not stream.is_alive()  # every frame accepted by the broker (QoS 1)
        recorder.start(watcher)
        assert wait_for_rows(requester, total * 5) == total * 5
        stopped = requester.send({"action": "stop", "device": DEV})
        assert stopped["ok"] and stopped["data"]["rows"] == total * 5, stopped
        assert recorder.terminate() == 0
    frames = [make_frame(DEV, seq)[0] for seq in range(total)]
    assert recorded_rows(read_recordings(data_dir)) == expected_rows(frames)
    assert not list(data_dir.rglob("*.tmp")) and not list((data_dir / ".segments").glob("s*"))


def test_kill_9_resumes_the_session_with_the_frames_queued_meanwhile(
    broker: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    with recorder_running(broker, data_dir, tmp_path / "recorder.log") as running:
        client, recorder, watcher, requester = running
        assert requester.send({"action": "start", "device": DEV, "label": "Squat"})["ok"]
        publish_frames(client, DEV, range(300))
        assert wait_for_rows(requester, 1500) == 1500
        recorder.kill()
        publish_frames(client, DEV, range(200, 600))  # queued by the broker (some again)
        publish_frames(client, "dur-other", range(300))  # not subscribed: not queued
        recorder.start(watcher)
        publish_frames(client, DEV, range(600, 900))
        assert wait_for_rows(requester, 4500) == 4500, recorder.log.read_text()[-3000:]
        counts = requester.send({"action": "status"})["data"]["counts"]
        assert counts["recovered_sessions"] == 1 and "unrecorded_frames" not in counts, counts

        def subscribed(messages: list) -> bool:
            details = json.loads(messages[-1].payload)["details"] if messages else {}
            return details.get("imu_subscriptions") == [DEV]

        assert subscribed(watcher.wait_for(timeout=10, predicate=subscribed))
        stopped = requester.send({"action": "stop", "device": DEV})
        assert stopped["ok"] and stopped["data"]["rows"] == 4500, stopped
        assert recorder.terminate() == 0
    frames = [make_frame(DEV, seq)[0] for seq in range(900)]
    assert recorded_rows(read_recordings(data_dir)) == expected_rows(frames)


def _stream(broker: MosquittoBroker, seqs: range) -> None:
    publisher = connect(broker.host, broker.port)
    try:
        for start in range(seqs.start, seqs.stop, 50):
            publish_frames(publisher, DEV, range(start, min(start + 50, seqs.stop)))
            time.sleep(0.01)
    finally:
        publisher.loop_stop()
        publisher.disconnect()


@contextlib.contextmanager
def persistent_broker() -> Iterator[MosquittoBroker]:
    """A broker that can save its sessions, also when the tests run as root.

    Started as root, mosquitto drops to the ``mosquitto`` user and then cannot
    write its database in a root-only directory, so sessions silently would not
    survive a restart: give it a directory that user can reach and write.
    """
    workdir = Path(tempfile.mkdtemp(prefix="har-recorder-broker-"))
    try:
        (workdir / "data").mkdir()
        if os.geteuid() == 0:
            workdir.chmod(0o755)
            with contextlib.suppress(LookupError):
                shutil.chown(workdir / "data", "mosquitto", "mosquitto")
        with MosquittoBroker(workdir=workdir) as broker:
            yield broker
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_broker_restart_mid_session_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with persistent_broker() as broker:
        client = connect(broker.host, broker.port)
        recorder = RecorderProcess(broker, data_dir, tmp_path / "recorder.log")
        try:
            recorder.start(Collector(client, "har/service/recorder/status"))
            requester = Requester(client)
            assert requester.send({"action": "start", "device": DEV, "label": "Squat"})["ok"]
            publish_frames(client, DEV, range(1500))  # restart before they are all written
            broker.restart()
            _wait_connected(client)
            publish_frames(client, DEV, range(1500, 2000))  # queued while the recorder reconnects
            requester = Requester(client)  # resubscribe its reply topic on the new broker
            assert wait_for_rows(requester, 10_000) == 10_000
            stopped = requester.send({"action": "stop", "device": DEV})
            assert stopped["ok"] and stopped["data"]["rows"] == 10_000, stopped
        finally:
            if recorder.process and recorder.process.poll() is None:
                recorder.terminate()
            client.loop_stop()
            client.disconnect()
    frames = [make_frame(DEV, seq)[0] for seq in range(2000)]
    assert recorded_rows(read_recordings(data_dir)) == expected_rows(frames)


def _wait_connected(client: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.is_connected()
