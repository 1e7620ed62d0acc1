"""``har gateway`` over a real Mosquitto: sim and replay reach the windower; CLI errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imu_har.protocol.codec import decode_frame, decode_window
from imu_har.protocol.messages import DeviceStatus, GroundTruth, ServiceStatus
from imu_har.runtime.client import Collector
from imu_har.sim.simulation import synthetic_recordings
from services.ble_gateway.app import GatewaySettings, build, main
from services.ble_gateway.replay_table import build_tracks
from services.windower.app import WindowerSettings
from services.windower.app import build as build_windower

pytestmark = pytest.mark.broker


def start(broker, run_service, **overrides):  # type: ignore[no-untyped-def]
    run_service(*build_windower(WindowerSettings(mqtt_port=broker.port, length=20, hop=10)))
    settings = GatewaySettings(mqtt_port=broker.port, status_interval=0.5, **overrides)
    runtime, handler = build(settings)
    return run_service(runtime, handler), handler


def test_sim_devices_reach_the_windower(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    frames = Collector(mqtt_client, "har/+/imu")
    windows = Collector(mqtt_client, "har/+/window")
    truth = Collector(mqtt_client, "har/+/truth")
    statuses = Collector(mqtt_client, "har/+/status")
    service_status = Collector(mqtt_client, "har/service/gateway/status")
    running, _service = start(
        broker,
        run_service,
        source="sim",
        devices=3,
        schedule="Squat:1,rest:0.6,Jumping:5",
    )
    wanted = {"sim-001", "sim-002", "sim-003"}

    def every_device(msgs):  # type: ignore[no-untyped-def]
        return {m.topic.split("/")[1] for m in msgs} >= wanted

    windows.wait_for(predicate=every_device, timeout=15)
    truth.wait_for(predicate=lambda ms: sum(b"Jumping" in m.payload for m in ms) >= 3, timeout=15)
    running.stop()
    got = [decode_window(bytes(m.payload)) for m in windows.messages]
    assert {w.device for w in got} == wanted
    assert all(w.samples.shape == (20, 9) for w in got)
    sent = [decode_frame(bytes(m.payload)) for m in frames.messages]
    for device in wanted:
        mine = [f for f in sent if f.device == device]
        assert [f.seq for f in mine] == list(range(len(mine)))  # per-device frame seq, nothing lost
        steps = np.diff([f.device_time or 0.0 for f in mine])
        np.testing.assert_allclose(steps, 0.26, atol=1e-9)  # back to back on the device clock
    assert all(f.device_time is not None and f.rate == 50.0 for f in sent)
    # Each frame is one full BLE notification: 13 samples at the default MTU 247.
    assert {len(f.samples) for f in sent} == {13}
    labels = [GroundTruth.from_payload(bytes(m.payload)) for m in truth.messages]
    sim1 = [t.label for t in labels if t.device == "sim-001"]
    assert sim1[0] == "Squat" and "rest" in sim1 and "Jumping" in sim1
    last = {}
    for m in statuses.messages:
        status = DeviceStatus.from_payload(bytes(m.payload))
        last[status.device] = status
    assert {s.source for s in last.values()} == {"sim"}
    assert all(s.frames > 0 and s.lost_packets == 0 and s.decode_errors == 0 for s in last.values())

    def went_offline(msgs):  # type: ignore[no-untyped-def]
        return ServiceStatus.from_payload(bytes(msgs[-1].payload)).state == "offline"

    # stop() returns once the broker has the offline status; our client may get it later
    service_status.wait_for(predicate=lambda ms: bool(ms) and went_offline(ms), timeout=10)
    online = [ServiceStatus.from_payload(bytes(m.payload)) for m in service_status.messages]
    details = [s.details for s in online if s.state == "online"][-1]
    assert details["source"] == "sim" and details["devices"] == 3
    assert online[-1].state == "offline"


def _recording(tmp_path: Path) -> Path:
    table = synthetic_recordings(2, 1.5, rate=50.0, seed=5, labels=("Squat", "Lunge"))
    path = tmp_path / "recording.parquet"
    pq.write_table(table, path)
    return path


def test_replay_reaches_the_windower(broker, run_service, mqtt_client, tmp_path):  # type: ignore[no-untyped-def]
    windows = Collector(mqtt_client, "har/+/window")
    truth = Collector(mqtt_client, "har/+/truth")
    frames = Collector(mqtt_client, "har/+/imu")
    running, _service = start(
        broker,
        run_service,
        source="replay",
        file=_recording(tmp_path),
        speed=3.0,
        device_map=["replay-s01=bench-b"],
    )
    windows.wait_for(
        predicate=lambda ms: {m.topic.split("/")[1] for m in ms} >= {"replay-s00", "bench-b"},
        timeout=15,
    )
    truth.wait_for(predicate=lambda ms: len(ms) >= 4, timeout=15)

    def all_samples(msgs: list) -> bool:  # type: ignore[type-arg]
        return sum(len(decode_frame(bytes(m.payload)).samples) for m in msgs) >= 300

    frames.wait_for(predicate=all_samples)
    running.stop()
    counts: Counter[str] = Counter()
    sizes: dict[str, list[int]] = {}
    for m in frames.messages:
        frame = decode_frame(bytes(m.payload))
        counts[frame.device] += len(frame.samples)
        sizes.setdefault(frame.device, []).append(len(frame.samples))
    assert counts == {"replay-s00": 75 * 2, "bench-b": 75 * 2}  # every sample, once
    for device_sizes in sizes.values():  # whole 13-sample notifications; the last one partial
        assert all(n % 13 == 0 for n in device_sizes[:-1]) and device_sizes[-1] % 13 == 150 % 13
    labels = [
        (t.device, t.label)
        for t in map(GroundTruth.from_payload, (bytes(m.payload) for m in truth.messages))
    ]
    assert labels.count(("bench-b", "Squat")) == 1 and labels.count(("bench-b", "Lunge")) == 1


def test_replay_tables_units_and_grouping(tmp_path: Path) -> None:
    table = synthetic_recordings(1, 1.0, rate=10.0, seed=1, labels=("Squat", "Situp"))
    seed_like = table.drop(["time"])
    for name, factor in (("acc", 10.0), ("mag", 0.1)):
        for axis in "xyz":
            column = f"{name}_{axis}"
            values = np.asarray(seed_like[column]) * factor
            seed_like = seed_like.set_column(
                seed_like.schema.get_field_index(column), column, pa.array(values, pa.float32())
            )
    default = GatewaySettings()
    tracks = build_tracks(seed_like, default)
    assert [t.device for t in tracks] == ["replay-s00"]
    original = build_tracks(table, default)[0]
    np.testing.assert_allclose(tracks[0].samples, original.samples, rtol=1e-5, atol=1e-4)
    assert tracks[0].rate == pytest.approx(2.0)  # seed-fitness default when there is no time
    assert tracks[0].labels is not None
    assert list(tracks[0].labels[[0, -1]]) == ["Squat", "Situp"]
    recorder_like = table.append_column("device", pa.array(["wrist-7"] * table.num_rows))
    default_units = GatewaySettings(units="default")
    assert [t.device for t in build_tracks(recorder_like, default_units)] == ["wrist-7"]
    with pytest.raises(ValueError, match="channel"):
        build_tracks(table.drop(["acc_x"]), default)
    with pytest.raises(ValueError, match="device id"):
        GatewaySettings(device_map=["wrist-7=bad/+id"])


def test_cli_refuses_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--source", "replay", "--file", str(tmp_path / "missing.parquet")]) == 2
    assert "needs an existing --file" in capsys.readouterr().err
    assert main(["--source", "ble"]) == 2
    assert "--ble-devices" in capsys.readouterr().err
    for bad in (
        ["--schedule", "Dance:5"],
        ["--ble-devices", "id=x;format=mp3;name=a"],
        ["--mtu", "9"],
    ):
        with pytest.raises(SystemExit) as info:
            main(bad)
        assert info.value.code == 2


def test_a_hostile_replay_table_plays_its_good_device(  # type: ignore[no-untyped-def]
    broker, run_service, mqtt_client, tmp_path
):
    table = synthetic_recordings(1, 1.0, rate=50.0, seed=2, labels=("Squat",))
    n = table.num_rows
    parts = [table.append_column("device", pa.array([d] * n)) for d in ("good", "bad/+", "x\n")]
    hostile = pa.concat_tables(parts)
    acc = np.asarray(hostile["acc_x"], dtype=np.float64).copy()
    acc[5] = np.nan
    labels = np.asarray(hostile["activity"]).astype(object)
    labels[n // 2 :] = "rm -rf /\n"
    for name, values in (("acc_x", acc), ("activity", labels)):
        index = hostile.schema.get_field_index(name)
        hostile = hostile.set_column(index, name, pa.array(values))
    path = tmp_path / "hostile.parquet"
    pq.write_table(hostile, path)
    frames = Collector(mqtt_client, "har/+/imu")
    truth = Collector(mqtt_client, "har/+/truth")
    service_status = Collector(mqtt_client, "har/service/gateway/status")
    running, handler = start(broker, run_service, source="replay", file=path, speed=5.0)

    def all_samples(msgs: list) -> bool:  # type: ignore[type-arg]
        return sum(len(decode_frame(bytes(m.payload)).samples) for m in msgs) >= n - 1

    frames.wait_for(predicate=all_samples, timeout=15)

    def counted(msgs: list) -> bool:  # type: ignore[type-arg]
        return (
            bool(msgs)
            and "not_finite"
            in ServiceStatus.from_payload(bytes(msgs[-1].payload)).counters.rejected
        )

    service_status.wait_for(predicate=counted, timeout=10)
    truth.wait_for(predicate=lambda ms: any(b'"good"' in m.payload for m in ms), timeout=10)
    status = ServiceStatus.from_payload(bytes(service_status.messages[-1].payload))
    assert status.counters.rejected == {"bad_device": 2, "not_finite": 1, "bad_label": 1}
    assert status.details["devices"] == 1 and "failed" not in status.details
    assert {decode_frame(bytes(m.payload)).device for m in frames.messages} == {"good"}
    good = [GroundTruth.from_payload(bytes(m.payload)) for m in truth.messages]
    assert [t.label for t in good if t.device == "good"] == ["Squat"]  # none for the bad label
    assert running.thread.is_alive() and handler.exit_status == 0


class _BrokenSource:
    """A source whose run fails, as a BLE stack that is not there would."""

    async def run(self, stop) -> None:  # type: ignore[no-untyped-def]
        raise OSError("no Bluetooth adapter")

    def close(self) -> None:
        self.closed = True


def test_a_failing_source_stops_the_service_with_exit_status_1(broker, run_service):  # type: ignore[no-untyped-def]
    settings = GatewaySettings(mqtt_port=broker.port, status_interval=0.5)
    runtime, handler = build(settings)
    handler.source = source = _BrokenSource()  # type: ignore[assignment]
    running = run_service(runtime, handler)
    running.thread.join(15)
    assert not running.thread.is_alive()  # the runtime stopped by itself
    assert handler.exit_status == 1 and "no Bluetooth adapter" in (handler.failed or "")
    assert source.closed
