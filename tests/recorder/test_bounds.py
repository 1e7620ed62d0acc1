"""Every structure the recorder keeps per device or per input has a bound (issue 12.4).

12.4: the set of known devices grew by one entry per fake status, +51 MB for
400,000 ids published on ``har/<id>/status``. These tests flood each
structure and check it stays within its bound, that what is over it is
counted, and that real devices are still served.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from imu_har.protocol import topics
from imu_har.protocol.commands import StartRecording, StopRecording
from imu_har.protocol.messages import Prediction
from imu_har.runtime.service import ServiceRuntime
from services.recorder.core import CommandError, Recorder, RecorderConfig
from services.recorder.settings import RecorderSettings
from services.recorder.subscriptions import MAX_HEALED, ImuSubscriptions
from tests.support.recorder import FlakyDisk, make_frame
from tests.support.recorder_mqtt import (
    Requester,
    announce,
    handler,
    publish_frames,
    serve,
    settings_for,
    wait_until,
)

NOW = 1_795_000_000.0


def core_for(tmp_path: Path, **settings: object) -> Recorder:
    """An opened core; ``settings`` are set without validation (limits below the flags' minimum)."""
    core = Recorder(RecorderConfig(data_dir=tmp_path).model_copy(update=settings))
    assert core.open()
    return core


def start(core: Recorder, device: str) -> str:
    command = StartRecording(action="start", device=device, label="Squat")
    return str(core.start(command, NOW)["session"])


def test_known_devices_forget_the_least_recently_seen(tmp_path: Path) -> None:
    core = core_for(tmp_path, max_known_devices=3)
    for device in ("d0", "d1", "d2"):
        assert core.note_device(device, NOW) is None
    assert core.note_device("d0", NOW + 1) is None  # seen again: now the most recent
    assert core.note_device("d3", NOW + 2) == "d1"
    assert list(core.known_devices) == ["d2", "d0", "d3"]
    payload = Prediction(
        device="d4", window_seq=0, window_start=NOW, window_end=NOW + 1, label="Squat",
        confidence=1.0, probabilities={"Squat": 1.0}, smoothed_label="Squat", model="m",
        model_version="v", latency_ms=1.0,
    ).to_payload()  # fmt: skip
    core.prediction(payload, NOW + 3)  # predictions make devices known too: same bound
    assert list(core.known_devices) == ["d0", "d3", "d4"]
    assert core.counts["known_devices_forgotten"] == 2
    assert core.is_known("d4") and not core.is_known("d1")


def test_sessions_are_bounded(tmp_path: Path) -> None:
    core = core_for(tmp_path, max_sessions=2, require_known_device=False)
    start(core, "a")
    start(core, "b")
    with pytest.raises(CommandError, match="too many sessions"):
        start(core, "c")
    assert core.counts["refused_too_many_sessions"] == 1
    assert len(list((tmp_path / ".segments").glob("session-*"))) == 2
    assert core.stop(StopRecording(action="stop", device="a"), NOW + 1)["finalized"]
    assert start(core, "c")


def test_session_dedup_keys_hold_two_parts(tmp_path: Path) -> None:
    core = core_for(tmp_path, rotate_rows=20)  # 4 frames of 5 samples per part
    core.note_device("k", NOW)
    start(core, "k")
    for seq in range(40):
        assert core.frame("k", make_frame("k", seq)[1]) == "recorded"
        assert core.commit()
        core.tick(NOW)
    session = core.by_device["k"]
    assert session.part == 10 and len(session.keys) + len(session.older_keys) <= 8
    assert core.frame("k", make_frame("k", 37)[1]) == "duplicate"  # the part before
    assert core.frame("k", make_frame("k", 39)[1]) == "duplicate"


def prediction(seq: int, version: str = "v1") -> bytes:
    return Prediction(
        device="p1", window_seq=seq, window_start=NOW, window_end=NOW + 1, label="Squat",
        confidence=1.0, probabilities={"Squat": 1.0}, smoothed_label="Squat", model="m",
        model_version=version, latency_ms=1.0,
    ).to_payload()  # fmt: skip


def test_prediction_keys_are_fixed_size_and_big_segments_rotate(tmp_path: Path) -> None:
    core = core_for(tmp_path, predictions_rotate_bytes=1_500_000)
    huge = "x" * 200_000  # a publisher's model_version: kept as 16 bytes, not 200 KB
    for seq in range(4):
        assert core.prediction(prediction(seq, huge), NOW) == "recorded"
    assert core.prediction(prediction(3, huge), NOW) == "duplicate"
    assert core.prediction(prediction(3, huge + "y"), NOW) == "recorded"
    assert {len(key) for key in core.predictions.keys} == {16}
    assert core.commit()
    assert not core.predictions.due(time.time())  # about 1 MB: not yet
    for seq in range(5, 8):
        core.prediction(prediction(seq, huge), NOW)
    assert core.commit() and core.predictions.due(time.time())
    core.tick(NOW)
    assert core.predictions.rows == 0 and len(list((tmp_path / "predictions").rglob("*.parquet")))


def test_stray_unsubscribes_wait_in_a_bounded_queue() -> None:
    runtime = ServiceRuntime("recorder", RecorderSettings())  # never connected
    subs = ImuSubscriptions(runtime, "har")
    for index in range(MAX_HEALED + 500):  # an older version's har/+/imu brings every device
        subs.stray(f"fake-{index}")
    assert subs.unsubscribing == MAX_HEALED


@pytest.mark.broker
def test_fake_device_statuses_cannot_grow_the_known_devices(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    settings = settings_for(broker, tmp_path, max_known_devices=50, unknown_device_wait=0)
    service = serve(run_service, settings)
    recorder = handler(service)
    requester = Requester(mqtt_client)
    infos = [
        mqtt_client.publish(
            topics.DEVICE_STATUS.format(device=f"fake-{i}"),
            json.dumps({"device": f"fake-{i}", "state": "streaming"}).encode(),
            qos=1,
        )
        for i in range(500)
    ]
    for info in infos:
        info.wait_for_publish(timeout=30)
    assert requester.send({"action": "status"})["ok"]  # delivered after every status
    assert len(recorder.core.known_devices) == 50
    assert service.runtime.counters.get("too_many_devices") == 450
    assert recorder.details()["known_devices"] == 50
    refused = requester.send({"action": "start", "device": "fake-0", "label": "Squat"})
    assert not refused["ok"] and "unknown device 'fake-0'" in refused["error"]
    announce(mqtt_client, "real-1")  # a real device is still served
    started = requester.send({"action": "start", "device": "real-1", "label": "Squat"})
    assert started["ok"], started


@pytest.mark.broker
def test_start_commands_waiting_for_their_device_are_bounded(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    settings = settings_for(broker, tmp_path, max_pending_starts=3, unknown_device_wait=30)
    service = serve(run_service, settings)
    requester = Requester(mqtt_client)
    for index in range(3):  # probing: each waits up to 30 s for its device, subscribed
        requester.post({"action": "start", "device": f"ghost-{index}", "label": "Squat"})
    refused = requester.send({"action": "start", "device": "ghost-3", "label": "Squat"})
    assert not refused["ok"] and "too many start commands waiting" in refused["error"]
    recorder = handler(service)
    assert len(recorder.starts.pending) == 3
    assert wait_until(lambda: len(recorder.imu.devices) == 3)
    assert "ghost-3" not in recorder.imu.devices


@pytest.mark.broker
def test_qos0_input_adds_no_pending_acks_while_the_disk_fails(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    disk = FlakyDisk()
    service = serve(run_service, settings_for(broker, tmp_path), disk)
    core = handler(service).core
    requester = Requester(mqtt_client)
    announce(mqtt_client, "q0-1")
    assert requester.send({"action": "start", "device": "q0-1", "label": "Squat"})["ok"]
    disk.full = True
    publish_frames(mqtt_client, "q0-1", range(1))  # cannot be written: the batch waits
    for _ in range(300):  # device statuses arrive with QoS 0: nothing to acknowledge
        announce(mqtt_client, "q0-1")
    assert requester.send({"action": "status"})["data"]["error"] is not None
    assert len(core._acks) <= 5, len(core._acks)  # only the QoS 1 commands wait
    disk.full = False
