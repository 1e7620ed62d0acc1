"""A storage error is one state until the failing write works again (issue 12).

With the disk full, finalizing a stopped session failed on every tick, and a
commit with nothing to write succeeded in between and cleared the error: 25
log lines in 3 s, and the retained status showed ``error: null`` between them.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from imu_har.protocol import topics
from imu_har.protocol.commands import StartRecording, StopRecording
from imu_har.runtime.client import Collector
from services.recorder.core import Recorder, RecorderConfig
from tests.support.recorder import FlakyDisk, make_frame, read_recordings
from tests.support.recorder_mqtt import (
    Requester,
    announce,
    handler,
    publish_frames,
    serve,
    settings_for,
    wait_rows,
)

DEV = "err-1"
NOW = 1_795_000_000.0
STOP_RECORD_FITS = 200  # bytes left: the stop record goes in, the Parquet file does not


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("cause", ["disk nearly full", "directory blocked"])
def test_a_failing_finalize_is_one_error_until_it_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cause: str
) -> None:
    disk = FlakyDisk()
    core = Recorder(RecorderConfig(data_dir=tmp_path, retry_seconds=0.0), disk)
    assert core.open()
    core.note_device(DEV, NOW)
    core.start(StartRecording(action="start", device=DEV, label="Squat"), NOW)
    for seq in range(10):
        core.frame(DEV, make_frame(DEV, seq)[1])
    assert core.commit()
    if cause == "disk nearly full":
        disk.room = STOP_RECORD_FITS
    else:
        (tmp_path / "recordings").write_text("a file where the directory goes")
    caplog.set_level(logging.INFO)
    caplog.clear()
    stopped = core.stop(StopRecording(action="stop", device=DEV), NOW + 10)
    assert stopped["finalized"] is False
    error = core.error
    assert error and "cannot finalize" in error
    for second in range(25):  # a retry every tick; batches commit in between
        core.tick(NOW + 11 + second)
        assert core.error == error
        assert core.commit()  # nothing to write: says nothing about the failing finalize
        assert core.error == error
    assert core.status(NOW)["finalizing"] and core.counts["write_errors"] >= 25
    assert len(error_lines(caplog)) == 1, error_lines(caplog)

    disk.room = None
    if cause == "directory blocked":
        (tmp_path / "recordings").unlink()
    core.tick(NOW + 40)
    assert core.error is None and core.status(NOW)["finalizing"] == []
    assert len(read_recordings(tmp_path)) == 50
    assert [m for m in (r.getMessage() for r in caplog.records) if "works again" in m]
    assert len(error_lines(caplog)) == 1


def test_a_failing_commit_clears_only_when_it_writes(tmp_path: Path) -> None:
    disk = FlakyDisk()
    core = Recorder(RecorderConfig(data_dir=tmp_path, retry_seconds=0.0), disk)
    assert core.open()
    core.note_device(DEV, NOW)
    core.start(StartRecording(action="start", device=DEV, label="Squat"), NOW)
    disk.full = True
    core.frame(DEV, make_frame(DEV, 0)[1])
    assert not core.commit() and "No space left" in str(core.error)
    for second in range(5):
        core.tick(NOW + second)
        assert "No space left" in str(core.error)
    disk.full = False
    core.tick(NOW + 10)
    assert core.error is None and core.status(NOW)["recording"][0]["rows"] == 5


@pytest.mark.broker
def test_the_retained_status_keeps_the_error_while_the_disk_is_full(
    broker, run_service, mqtt_client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk = FlakyDisk()
    service = serve(run_service, settings_for(broker, tmp_path, retry_seconds=0.05), disk)
    core = handler(service).core
    requester = Requester(mqtt_client)
    retained = Collector(mqtt_client, topics.RECORDER_STATUS.format())
    announce(mqtt_client, DEV)
    assert requester.send({"action": "start", "device": DEV, "label": "Squat"})["ok"]
    publish_frames(mqtt_client, DEV, range(10))
    assert wait_rows(requester, 50)["error"] is None
    caplog.set_level(logging.INFO)
    caplog.clear()
    disk.room = STOP_RECORD_FITS
    stopped = requester.send({"action": "stop", "device": DEV})
    assert stopped["ok"] and stopped["data"]["finalized"] is False, stopped
    retained.clear()
    deadline = time.monotonic() + 20
    while core.counts["write_errors"] < 12 and time.monotonic() < deadline:
        assert requester.send({"action": "status"})["data"]["error"]  # a batch commits each
    assert core.counts["write_errors"] >= 12  # a dozen retries, each failed
    statuses = [json.loads(m.payload) for m in retained.wait_for(0, timeout=0)]
    assert statuses and all(s["error"] for s in statuses), [s["error"] for s in statuses]
    failures = [line for line in error_lines(caplog) if "cannot finalize" in line]
    assert len(failures) <= 2, failures  # the core's line and the service status line

    disk.room = None

    def recovered(messages: list) -> bool:
        return bool(messages) and json.loads(messages[-1].payload)["error"] is None

    assert recovered(retained.wait_for(timeout=10, predicate=recovered))
    listed = requester.send({"action": "list"})["data"]["sessions"]
    assert [s["rows"] for s in listed] == [50]
