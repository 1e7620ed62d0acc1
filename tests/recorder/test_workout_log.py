"""The recorder's workout event log: every rep and set event, durable, deduplicated, Parquet."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from imu_har.protocol import topics
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.workout import RepEvent, SetEvent
from services.recorder.core import Recorder, RecorderConfig
from services.recorder.events import REPS, SETS
from services.recorder.segments import WriteFn
from tests.support.recorder import FlakyDisk
from tests.support.recorder_mqtt import Requester, handler, serve, settings_for

DEV = "wrist-7"
NOW = 1_795_000_000.0  # 2026-11-18 UTC


def recorder(tmp_path: Path, write: WriteFn = os.write, **kwargs: object) -> Recorder:
    """An opened core on ``tmp_path``; ``kwargs`` override settings (unvalidated: small limits)."""
    core = Recorder(RecorderConfig(data_dir=tmp_path).model_copy(update=kwargs), write)
    assert core.open()
    return core


def rep(n: int, set_: int = 1, end: float = NOW, device: str = DEV) -> RepEvent:
    form = "incorrect" if n == 3 else "correct"
    return RepEvent(
        device=device, exercise="Squat", set=set_, rep=n, start=end - 2.0, end=end + n,
        form=form, confidence=0.8,
    )  # fmt: skip


def a_set(set_: int = 1, end: float = NOW) -> SetEvent:
    return SetEvent(
        device=DEV, exercise="Squat", set=set_, reps=5, start=end - 2.0, end=end + 5,
        incorrect=1, mean_rep_seconds=2.0,
    )  # fmt: skip


def log(core: Recorder, event: RepEvent | SetEvent, at: float = NOW) -> str:
    dataset = REPS if isinstance(event, RepEvent) else SETS
    return core.workout_event(dataset, event.device, event.to_payload(), at)


def read(tmp_path: Path, dataset: str) -> list[dict[str, Any]]:
    """Every row of ``reps`` or ``sets``, read as a Hive-partitioned dataset (date column)."""
    part = ds.dataset(tmp_path / dataset, format="parquet", partitioning="hive")
    return sorted(part.to_table().to_pylist(), key=lambda r: (r["set"], r.get("rep", 0)))


def test_rep_and_set_events_are_logged_deduplicated_and_compacted_by_date(tmp_path: Path) -> None:
    core = recorder(tmp_path, predictions_rotate_rows=4)
    reps = [rep(n) for n in range(1, 6)]
    assert [log(core, r, NOW + 10 + i) for i, r in enumerate(reps)] == ["recorded"] * 5
    assert log(core, reps[2]) == "duplicate"  # redelivered (QoS 1): logged once
    assert log(core, a_set()) == "recorded"
    assert core.commit()
    core.tick(NOW)  # 6 events >= 4: rotated into parts
    assert not list((tmp_path / ".segments").glob("workouts-*"))
    tomorrow = rep(1, set_=2, end=NOW + 86_400)
    assert log(core, tomorrow) == "recorded"  # the next day: its own partition
    core.close()  # compacts the rest
    rows = read(tmp_path, REPS)
    assert [(r["set"], r["rep"]) for r in rows] == [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 1)]
    want = reps[2].model_dump() | {"received_at": NOW + 12, "date": "2026-11-18"}
    assert rows[2] == want
    assert rows[-1]["date"] == "2026-11-19"
    sets = read(tmp_path, SETS)
    assert sets == [a_set().model_dump() | {"received_at": NOW, "date": "2026-11-18"}]
    assert core.counts["reps_logged"] == 6 and core.counts["sets_logged"] == 1
    assert core.counts["duplicates"] == 1
    assert not list((tmp_path / ".segments").glob("workouts-*"))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"device": "wrist-7"}', "bad_json"),
        (rep(1).to_payload()[:-1] + b', "extra": 1}', "bad_json"),
        (rep(1).model_copy(update={"end": 1e300}).to_payload(), "bad_time"),
        (rep(1, device="other-1").to_payload(), "device_mismatch"),
        (b"\xff" * 10, "bad_json"),
    ],
)
def test_hostile_events_are_refused_with_their_reason_and_log_nothing(
    tmp_path: Path, payload: bytes, reason: str
) -> None:
    core = recorder(tmp_path)
    with pytest.raises(PayloadError) as refused:
        core.workout_event(REPS, DEV, payload, NOW)
    assert refused.value.reason == reason
    assert core.workouts.rows == 0 and core.workouts.writer is None


def test_workout_segment_reopened_after_a_crash_drops_redelivered_events(tmp_path: Path) -> None:
    core = recorder(tmp_path)
    log(core, rep(1))
    log(core, a_set())
    assert core.commit()
    del core  # a crash: nothing compacted
    again = recorder(tmp_path)
    assert log(again, rep(1)) == "duplicate" and log(again, a_set()) == "duplicate"
    assert log(again, rep(2)) == "recorded"
    again.close()
    assert [r["rep"] for r in read(tmp_path, REPS)] == [1, 2]
    assert len(read(tmp_path, SETS)) == 1


def test_a_full_disk_acknowledges_no_event_until_it_is_written(tmp_path: Path) -> None:
    disk = FlakyDisk()
    core = recorder(tmp_path, write=disk)
    acks: list[int] = []
    disk.full = True
    assert log(core, rep(1)) == "recorded"
    core.defer_ack(lambda: acks.append(1))
    assert not core.commit() and acks == []  # not durable: the broker keeps it
    assert core.error and "cannot write" in core.error
    disk.full = False
    assert core.commit() and acks == [1]
    core.close()
    assert [r["rep"] for r in read(tmp_path, REPS)] == [1]


@pytest.mark.broker
def test_the_service_logs_the_published_events_and_counts_hostile_ones(
    broker, run_service, mqtt_client, tmp_path: Path
) -> None:
    service = serve(run_service, settings_for(broker, tmp_path))
    subscribed = dict(handler(service).subscriptions())
    assert subscribed[topics.REP.subscription()] == subscribed[topics.SET.subscription()] == 1
    events = [rep(n) for n in range(1, 4)] + [a_set()]
    for event in events:
        template = topics.REP if isinstance(event, RepEvent) else topics.SET
        topic = template.format(device=DEV)
        mqtt_client.publish(topic, event.to_payload(), qos=1).wait_for_publish(10)
    stranger = topics.REP.format(device="other-1")
    mqtt_client.publish(stranger, rep(4).to_payload(), qos=1).wait_for_publish(10)
    requester = Requester(mqtt_client)
    deadline = time.monotonic() + 20
    while True:
        counts = requester.send({"action": "status"})["data"]["counts"]
        if counts.get("reps_logged") == 3 and counts.get("sets_logged") == 1:
            break
        assert time.monotonic() < deadline, counts
        time.sleep(0.1)
    assert service.runtime.counters.get("device_mismatch") == 1
    service.stop()  # compacts the log
    assert [r["rep"] for r in read(tmp_path, REPS)] == [1, 2, 3]
    assert read(tmp_path, SETS)[0]["reps"] == 5


def test_without_record_workouts_no_event_is_subscribed_or_logged(tmp_path: Path) -> None:
    from imu_har.runtime.inbox import Inbound
    from services.recorder.app import build
    from services.recorder.settings import RecorderSettings

    settings = RecorderSettings(data_dir=tmp_path, record_workouts=False)
    _runtime, recorder_handler = build(settings)
    subscribed = {topic for topic, _qos in recorder_handler.subscriptions()}
    assert topics.REP.subscription() not in subscribed
    assert topics.SET.subscription() not in subscribed
    assert topics.PREDICTION.subscription() in subscribed
    # an event from a subscription the broker's persistent session kept from an earlier run
    kept = Inbound(topics.REP.format(device=DEV), rep(1).to_payload(), qos=1)
    assert recorder_handler._workout_event(kept)  # taken (and acknowledged), not logged
    assert recorder_handler.core.workouts.rows == 0
    recorder_handler.close()
