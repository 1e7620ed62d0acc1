"""The gateway's own inputs, attacked: settings, device specs and renames, replay tables, bounds.

A bad setting stops the gateway before it connects with a message naming it; a
bad row, device or packet at run time is refused and counted, and everything
else keeps streaming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from imu_har.protocol.codec import decode_frame
from imu_har.protocol.errors import PayloadError
from imu_har.runtime.skeleton import StartupError
from imu_har.sim.simulation import synthetic_recordings
from services.ble_gateway import packets
from services.ble_gateway.app import build, main
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.gateway import Gateway
from services.ble_gateway.link import DeviceLink
from services.ble_gateway.replay import ReplaySource, truth_changes
from services.ble_gateway.replay_table import MAX_GAP, Track, build_tracks, playback_times
from services.ble_gateway.settings import GatewaySettings
from services.ble_gateway.specs import parse_device_spec

BAD_IDS = ["wrist\n", "a/+", "a#", "x\x00y", "service", "a" * 65, "..", "-a", "wr ist", "é"]


class Rejects:
    """Collects ``reject(reason, text)`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, reason: str, text: str) -> None:
        self.calls.append((reason, text))

    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.calls]


# -- settings: refused before connecting --------------------------------------------


@pytest.mark.parametrize("device", BAD_IDS)
def test_ble_device_ids_are_full_matches(device: str) -> None:
    with pytest.raises(ValidationError, match="device id"):
        GatewaySettings(source="ble", ble_devices=[{"id": device, "name": "HAR"}])


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("HAR\n", "control characters"),
        ("HAR\x00", "control characters"),
        ("HAR\x1b[2J", "control characters"),
        ("HAR-*", "wildcard"),
        ("HAR-?", "wildcard"),
        ("x" * 249, "longer than 248 bytes"),
    ],
)
def test_ble_names_are_matched_exactly_so_odd_ones_are_refused(name: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        GatewaySettings(source="ble", ble_devices=[{"id": "wrist", "name": name}])


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"id": "w", "address": "AA:BB:CC:DD:EE:FF\n"}, "control characters"),
        ({"id": "w", "address": "zz"}, "neither"),
        ({"id": "w", "address": "AA:BB:CC:DD:EE"}, "neither"),
        ({"id": "w", "address": 5}, "must be a string"),
        ({"id": "w", "name": "x", "rate": "nan"}, "outside"),
        ({"id": "w", "name": "x", "rate": float("inf")}, "outside"),
        ({"id": "w", "name": "x", "rate": -1}, "outside"),
        ({"id": "w", "name": "x", "rate": "fast"}, "not a number"),
        ({"id": "w", "service": "not-a-uuid"}, "not a UUID"),
        ({"id": "w", "name": "x", "char": "5a4e0002\n"}, "control characters"),
        ({"id": "w", "name": "x", "format": "mp3"}, "format must be"),
        ({"id": "w", "name": "x", "colour": "red"}, "unknown device setting"),
        ("id=w;name=x;address=AA:BB", "neither"),
    ],
)
def test_ble_spec_values_are_checked(spec: str | dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        GatewaySettings(source="ble", ble_devices=[spec])


def test_ble_specs_name_each_device_and_address_once() -> None:
    with pytest.raises(ValidationError, match="device id 'w' is configured twice"):
        GatewaySettings(source="ble", ble_devices=["id=w;name=a", "id=w;name=b"])
    with pytest.raises(ValidationError, match="configured twice"):
        GatewaySettings(
            source="ble",
            ble_devices=["id=a;address=aa:bb:cc:dd:ee:ff", "id=b;address=AA:BB:CC:DD:EE:FF"],
        )


def test_ble_spec_strings_strip_whitespace_and_uuids_are_normalised() -> None:
    config = parse_device_spec("id=wrist ;name=HAR-1\n;service=180D;rate=100")
    assert (config.device, config.name, config.rate) == ("wrist", "HAR-1", 100.0)
    assert config.service_uuid == "0000180d-0000-1000-8000-00805f9b34fb"
    assert parse_device_spec("id=w;name=x").rate is None  # the gateway's --rate


@pytest.mark.parametrize(
    "item", ["a=b\n", "a=+", "a=har/x", "=b", "a=", "a\n=b", "a=service", "a=b=c", "ab"]
)
def test_device_map_renames_are_full_matches(item: str) -> None:
    with pytest.raises(ValidationError, match="device"):
        GatewaySettings(device_map=[item])


def test_device_map_renames_a_device_once() -> None:
    with pytest.raises(ValidationError, match="twice"):
        GatewaySettings(device_map=["a=b", "a=c"])


@pytest.mark.parametrize("prefix", ["a/b", "+", "sim\n", "", "x" * 58])
def test_sim_device_prefix_must_make_valid_ids(prefix: str) -> None:
    with pytest.raises(ValidationError, match="device id"):
        GatewaySettings(device_prefix=prefix)


def test_replay_rate_is_bounded_like_a_frame() -> None:
    with pytest.raises(ValidationError, match="replay_rate"):
        GatewaySettings(replay_rate=1e9)


def test_the_cli_names_a_bad_device_setting(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--source", "ble", "--ble-devices", "id=a/+;name=x"],
        ["--source", "replay", "--device-map", "a=b+"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "invalid settings" in err and ("--ble-devices" in err or "--device-map" in err)


def test_more_wearables_than_max_devices_do_not_start() -> None:
    with pytest.raises(StartupError, match="--max-devices 2"):
        build(GatewaySettings(devices=3, max_devices=2))
    specs = ["id=a;name=a", "id=b;name=b", "id=c;name=c"]
    with pytest.raises(StartupError, match="--max-devices 2"):
        build(GatewaySettings(source="ble", ble_devices=specs, max_devices=2))


# -- the core: bounded, counted --------------------------------------------------------


def _core(rejects: Rejects, **settings: object) -> tuple[GatewayCore, list[tuple]]:  # type: ignore[type-arg]
    sent: list[tuple] = []  # type: ignore[type-arg]
    core = GatewayCore(
        lambda *m: sent.append(m),
        GatewaySettings(**settings),  # type: ignore[arg-type]
        reject=rejects,
    )
    return core, sent


def test_the_core_serves_at_most_max_devices_and_each_once() -> None:
    core, _ = _core(Rejects(), max_devices=2)
    core.add(DeviceLink("a", rate=50.0))
    core.add(DeviceLink("b", rate=50.0))
    with pytest.raises(PayloadError) as info:
        core.add(DeviceLink("c", rate=50.0))
    assert info.value.reason == "too_many_devices"
    with pytest.raises(ValueError, match="twice"):
        core.add(DeviceLink("a", rate=50.0))
    with pytest.raises(PayloadError, match="forbidden"):
        core.add(DeviceLink("d\n", rate=50.0))
    assert list(core.links) == ["a", "b"]


def test_a_bad_replayed_frame_or_truth_is_counted_and_the_next_one_goes_out() -> None:
    rejects = Rejects()
    core, sent = _core(rejects)
    link = core.add(DeviceLink("wrist", rate=50.0, source="replay"))
    bad = np.full((3, 9), np.nan, np.float32)
    assert not core.publish_samples(link, bad, 1_700_000_000.0, 0.0)
    assert core.publish_samples(link, np.zeros((3, 9), np.float32), 1_700_000_000.0, 0.0)
    assert not core.publish_truth("ghost", "Squat", 0, 1.0)
    assert core.publish_truth("wrist", "Squat", 0, 1.0)
    assert rejects.reasons() == ["not_finite", "unknown_device"]
    frames = [decode_frame(p) for t, p, _q, _r in sent if t == "har/wrist/imu"]
    assert [f.seq for f in frames] == [0]  # the refused frame used no sequence number
    assert link.decode_errors == 1 and link.frames == 1


def test_the_consumer_survives_a_bug_in_one_packet() -> None:
    rejects = Rejects()
    core, sent = _core(rejects)
    core.add(DeviceLink("good", rate=50.0))
    broken = core.add(DeviceLink("broken", rate=50.0))

    def boom(data: bytes, received_at: float) -> None:
        raise RuntimeError("decoder bug")

    broken.to_frame = boom  # type: ignore[method-assign]
    gateway = Gateway(GatewaySettings(), core)
    data = packets.encode_batched(np.zeros((13, 9), np.float32), 0, 0, 50.0)
    for device in ("broken", "good", "broken"):
        gateway.enqueue(device, data, 1_700_000_000.0)

    async def consume() -> None:
        task = asyncio.create_task(gateway._consume())
        deadline = asyncio.get_running_loop().time() + 10
        while not gateway.queue.empty() and not task.done():
            assert asyncio.get_running_loop().time() < deadline, "packets left in the queue"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        assert not task.done(), "the consumer died"
        task.cancel()

    asyncio.run(consume())
    assert rejects.reasons() == ["handler_error", "handler_error"]
    assert [t for t, *_ in sent if t.endswith("/imu")] == ["har/good/imu"]


# -- replay tables ----------------------------------------------------------------------


def _table(devices: list[object], seconds: float = 1.0) -> pa.Table:
    """One synthetic recording per entry of ``devices`` (the value of its device column)."""
    base = synthetic_recordings(1, seconds, rate=50.0, seed=1, labels=("Squat",))
    n = base.num_rows
    parts = [base.append_column("device", pa.array([d] * n, pa.string())) for d in devices]
    return pa.concat_tables(parts)


def _set(table: pa.Table, name: str, values: np.ndarray | list[object]) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values))


def test_replay_plays_good_devices_and_refuses_bad_ids() -> None:
    rejects = Rejects()
    table = _table(["good", "bad/+", "x\n", "service", None, "y" * 100_000, "good-2"])
    tracks = build_tracks(table, GatewaySettings(), rejects)
    assert [t.device for t in tracks] == ["good", "good-2"]
    assert rejects.reasons() == ["bad_device"] * 5
    assert any("'x\\n'" in text for _, text in rejects.calls)  # quoted (%r), never raw
    assert all(len(text) < 300 for _, text in rejects.calls)


def test_replay_renames_may_fix_an_id_and_merge_devices() -> None:
    table = _table(["left", "right"])
    tracks = build_tracks(table, GatewaySettings(device_map=["left=wrist", "right=wrist"]))
    assert [t.device for t in tracks] == ["wrist"]
    assert len(tracks[0].times) == 2 * _table(["x"]).num_rows


def test_replay_serves_at_most_max_devices() -> None:
    rejects = Rejects()
    tracks = build_tracks(
        _table([f"d{i}" for i in range(5)]), GatewaySettings(max_devices=3), rejects
    )
    assert [t.device for t in tracks] == ["d0", "d1", "d2"]
    assert rejects.reasons() == ["too_many_devices"] * 2


def test_replay_drops_rows_with_nan_or_overflowing_samples() -> None:
    rejects = Rejects()
    table = _table(["wrist"])
    acc = np.asarray(table["acc_x"], dtype=np.float64).copy()
    acc[[3, 7]] = [np.nan, 1e300]  # 1e300 overflows float32 to inf
    tracks = build_tracks(_set(table, "acc_x", acc), GatewaySettings(), rejects)
    assert len(tracks[0].samples) == table.num_rows - 2 and np.isfinite(tracks[0].samples).all()
    assert rejects.reasons() == ["not_finite"]


def test_replay_times_far_in_the_future_or_nan_cannot_stall_a_device() -> None:
    rejects = Rejects()
    table = _table(["wrist"], seconds=2.0)
    times = np.asarray(table["time"], dtype=np.float64).copy()
    times[[0, 10, 20, 30]] = [np.nan, 1e18, np.inf, -1e18]
    track = build_tracks(_set(table, "time", times), GatewaySettings(), rejects)[0]
    assert np.isfinite(track.times).all() and (np.diff(track.times) >= 0).all()
    assert track.times[-1] == pytest.approx((table.num_rows - 1) / 50.0)
    assert track.rate == pytest.approx(50.0)
    assert rejects.reasons() == ["bad_time"]
    t, bad = playback_times(np.array([0.0, 1.0, 1.0 + 2 * MAX_GAP, 2.0 + 2 * MAX_GAP]), 0.02)
    assert bad == 1 and t.tolist() == [0.0, 1.0, 2.0, 3.0]  # a long pause plays as one step
    t, bad = playback_times(np.array([0.0, 1.0, 0.5, 2.0]), 0.02)
    assert bad == 1 and t.tolist() == [0.0, 1.0, 2.25, 3.75]  # never back: the median step


def test_replay_refuses_a_device_with_an_absurd_rate() -> None:
    rejects = Rejects()
    table = _table(["fast", "fine"])
    times = np.asarray(table["time"], dtype=np.float64).copy()
    half = table.num_rows // 2
    times[:half] = np.arange(half) * 1e-9  # a gigahertz recording
    tracks = build_tracks(_set(table, "time", times), GatewaySettings(), rejects)
    assert [t.device for t in tracks] == ["fine"]
    assert rejects.reasons() == ["bad_rate"]


def test_replay_labels_that_are_not_names_give_no_truth() -> None:
    rejects = Rejects()
    table = _table(["wrist"])
    n = table.num_rows
    labels = ["Squat"] * (n // 3) + ["x" * 1_000_000] * (n // 3) + ["a\nb"]
    labels += ["Lunge"] * (n - len(labels))
    tracks = build_tracks(_set(table, "activity", labels), GatewaySettings(), rejects)
    assert rejects.reasons() == ["bad_label", "bad_label"]
    assert tracks[0].labels is not None and tracks[0].labels.dtype.itemsize <= 64 * 4
    assert set(tracks[0].labels.tolist()) == {"Squat", "", "Lunge"}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda t: t.drop(["acc_x"]), "channel"),
        (lambda t: t.slice(0, 0), "no rows"),
        (lambda t: _set(t, "acc_y", ["x"] * t.num_rows), "'acc_y' is not numeric"),
        (lambda t: _set(t, "device", ["a/b"] * t.num_rows), "no playable device"),
        (lambda t: _set(t, "device", [[1, 2]] * t.num_rows), "'device' is not text"),
        (lambda t: _set(t, "index", ["x"] * t.num_rows), "'index' is not numeric"),
    ],
)
def test_an_unplayable_table_is_a_startup_error(
    change: Callable[[pa.Table], pa.Table], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        build_tracks(change(_table(["wrist"])), GatewaySettings(), Rejects())


def test_build_refuses_an_unplayable_replay_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    path = tmp_path / "bad.parquet"
    pq.write_table(_table(["a/+", "b\n"]), path)
    with pytest.raises(StartupError, match="no playable device"):
        build(GatewaySettings(source="replay", file=path))
    assert main(["--source", "replay", "--file", str(path)]) == 2
    assert "no playable device" in capsys.readouterr().err


# -- ground truth: bounded per device ---------------------------------------------------


def test_truth_changes_are_the_last_change_of_each_notification() -> None:
    labels = np.array(["a", "a", "b", "a", "b", "b", "c", "c", "c"])
    assert truth_changes(labels, "", 3).tolist() == [2, 4, 6]  # not 0 (a), 3 (a)
    assert truth_changes(np.array(["a"] * 3 + ["b"] * 3), "", 3).tolist() == [0, 3]
    assert truth_changes(np.array(["a"] * 5), "a", 3).tolist() == []


def test_replay_truth_is_at_most_one_per_notification() -> None:
    sent: list[tuple] = []  # type: ignore[type-arg]
    settings = GatewaySettings(speed=1000.0)
    core = GatewayCore(lambda *m: sent.append(m), settings)
    n = 13 * 20
    labels = np.array(["Squat", "Lunge"] * (n // 2))  # a change on every row
    track = Track("t", np.arange(n) / 50.0, np.zeros((n, 9), np.float32), labels, 50.0)
    source = ReplaySource(core, [track], settings)
    asyncio.run(source.run(asyncio.Event()))
    truth = [m for m in sent if m[0] == "har/t/truth"]
    assert 1 <= len(truth) <= n // 13
    assert sum(len(decode_frame(p).samples) for t, p, *_ in sent if t == "har/t/imu") == n
