"""Sensor Logger messages -> our frames, pure: schema checks, units, acceleration, alignment, order.

Messages are built from the app's documented schema (tests/support/sensorlogger.py)
for each kind of phone; the frames must hold exactly the converted values at
exactly the readings' times.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import validate_device_id
from services.ble_gateway.phone import schema
from services.ble_gateway.phone.align import G, PhoneTimeline
from services.ble_gateway.phone.names import phone_device_id
from services.ble_gateway.phone.order import BatchOrder
from tests.support import sensorlogger as sl

T0 = 1_796_000_000_000_000_000  # ns, December 2026
MAX = 1 << 20


def samples(n: int = 40, seed: int = 0) -> np.ndarray:
    """(n, 9) in g, deg/s, uT: a moving arm."""
    rng = np.random.default_rng(seed)
    acc = np.array([0.1, -0.2, 1.0]) + rng.normal(0, 0.3, (n, 3))
    return np.concatenate([acc, rng.normal(0, 90, (n, 3)), rng.normal(0, 30, (n, 3))], axis=1)


def times(n: int, rate: float = 100.0, start: int = T0) -> np.ndarray:
    return start + np.round(np.arange(n) * 1e9 / rate).astype(np.int64)


def parse(message: dict) -> schema.PhoneBatch:
    return schema.parse(sl.encoded(message), MAX)


def aligned_frames(timeline: PhoneTimeline, message: dict):  # type: ignore[no-untyped-def]
    out = timeline.push(parse(message))
    assert out is not None
    return out


@pytest.mark.parametrize("kind", ["android", "android-no-total", "ios", "ios-native"])
def test_every_kind_of_phone_gives_exactly_the_converted_samples(kind: str) -> None:
    data, stamps = samples(), times(40)
    message = sl.message(0, sl.readings(data, stamps, kind))
    out = aligned_frames(PhoneTimeline(ios_native=kind == "ios-native"), message)
    assert out.acceleration == ("total" if kind == "android" else "accelerometer+gravity")
    assert out.channels == (
        "acc_x",
        "acc_y",
        "acc_z",
        "gyro_x",
        "gyro_y",
        "gyro_z",
        "mag_x",
        "mag_y",
        "mag_z",
    )
    assert out.units == ("g",) * 3 + ("deg/s",) * 3 + ("uT",) * 3
    [piece] = out.pieces
    # acceleration with gravity in g, rotation in deg/s, field in uT: the phone's own values
    np.testing.assert_allclose(piece.samples, data, rtol=1e-6, atol=1e-5)
    assert piece.samples.dtype == np.float32
    # sample i of the frame is at device_time + i / rate: exactly the readings' times
    placed = piece.device_time + np.arange(40) / piece.rate
    np.testing.assert_allclose(placed, stamps / 1e9, rtol=0, atol=1e-6)
    assert piece.device_time == stamps[0] / 1e9 and piece.rate == pytest.approx(100.0)


def test_units_are_the_apps() -> None:
    stamps = times(2)
    message = sl.message(
        0,
        sl.xyz("totalacceleration", stamps, np.array([[0, 0, G], [G, -2 * G, 0]]))
        + sl.xyz("gyroscope", stamps, np.array([[np.pi, 0, 0], [0, -np.pi / 2, 0]]))
        + sl.xyz("magnetometer", stamps, np.array([[20, -5, -40], [0, 0, 1]])),
    )
    [piece] = aligned_frames(PhoneTimeline(), message).pieces
    np.testing.assert_allclose(
        piece.samples,
        [[0, 0, 1, 180, 0, 0, 20, -5, -40], [1, -2, 0, 0, -90, 0, 0, 0, 1]],
        atol=1e-5,
    )


def test_streams_at_their_own_rates_meet_on_the_acceleration_timeline() -> None:
    # acceleration at 100 Hz, gyroscope at 200 Hz, magnetometer at 50 Hz, all linear in time
    acc_t, gyro_t, mag_t = times(20, 100.0), times(41, 200.0), times(11, 50.0)
    ramp = lambda t: np.repeat(((t - T0) / 1e9)[:, None], 3, axis=1)  # noqa: E731
    message = sl.message(
        0,
        sl.xyz("totalacceleration", acc_t, G * ramp(acc_t))
        + sl.xyz("gyroscope", gyro_t, np.radians(100 * ramp(gyro_t)))
        + sl.xyz("magnetometer", mag_t, 10 * ramp(mag_t)),
    )
    [piece] = aligned_frames(PhoneTimeline(), message).pieces
    t = (acc_t - T0) / 1e9
    np.testing.assert_allclose(piece.samples[:, 0], t, atol=1e-6)
    np.testing.assert_allclose(piece.samples[:, 3], 100 * t, atol=1e-4)
    np.testing.assert_allclose(piece.samples[:, 6], 10 * t, atol=1e-5)


def test_ios_gravity_is_matched_by_time_not_by_position() -> None:
    acc_t, grav_t = times(10), times(5, 50.0)  # gravity at half the rate
    message = sl.message(
        0,
        sl.xyz("accelerometer", acc_t, np.zeros((10, 3)))
        + sl.xyz("gravity", grav_t, G * np.stack([np.arange(5) * 0.1, np.zeros(5), np.ones(5)], 1)),
    )
    [piece] = aligned_frames(PhoneTimeline(), message).pieces
    np.testing.assert_allclose(piece.samples[:9, 0], np.arange(9) * 0.05, atol=1e-6)  # interpolated
    np.testing.assert_allclose(piece.samples[:, 2], 1.0, atol=1e-6)


@pytest.mark.parametrize(
    ("sensors", "channels"),
    [
        (
            ("totalacceleration", "gyroscope"),
            ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"),
        ),
        (
            ("totalacceleration", "magnetometer"),
            ("acc_x", "acc_y", "acc_z", "mag_x", "mag_y", "mag_z"),
        ),
        (("totalacceleration",), ("acc_x", "acc_y", "acc_z")),
        (("accelerometer", "gyroscope"), ("gyro_x", "gyro_y", "gyro_z")),  # no gravity: no acc
    ],
)
def test_a_phone_without_a_sensor_sends_the_channels_it_has(sensors, channels) -> None:  # type: ignore[no-untyped-def]
    data, stamps = samples(10), times(10)
    message = sl.message(0, sl.readings(data, stamps, "android", sensors))
    out = aligned_frames(PhoneTimeline(), message)
    assert out.channels == channels
    assert out.pieces[0].samples.shape == (10, len(channels))
    assert out.acceleration == ("none" if "accelerometer" in sensors else "total")


def test_readings_of_other_sensors_are_skipped_unread() -> None:
    data, stamps = samples(5), times(5)
    extra = [
        {"name": "location", "time": T0, "values": {"latitude": 51.5, "longitude": -0.1}},
        {"name": "battery", "time": T0, "values": {"batteryLevel": 0.5, "batteryState": "full"}},
        {
            "name": "annotation",
            "time": T0,
            "values": {"text": "hi", "millisecond_press_duration": 3},
        },
    ]
    batch = parse(sl.message(0, sl.readings(data, stamps) + extra))
    assert batch.ignored == 3 and set(batch.streams) == schema.USED


def test_gaps_cut_frames_and_the_next_batch_goes_on_where_the_last_ended() -> None:
    timeline = PhoneTimeline()
    stamps = np.concatenate([times(10), times(10, start=T0 + 2 * 10**9)])  # 1.9 s pause
    out = aligned_frames(timeline, sl.message(0, sl.readings(samples(20), stamps)))
    assert [len(p.samples) for p in out.pieces] == [10, 10]
    assert [p.device_time for p in out.pieces] == [stamps[0] / 1e9, stamps[10] / 1e9]
    # the next batch repeats its last two readings: they are not sent twice
    again = np.concatenate([stamps[-2:], stamps[-1] + np.arange(1, 6) * 10**7])
    out = aligned_frames(timeline, sl.message(1, sl.readings(samples(7), again)))
    assert [p.device_time for p in out.pieces] == [again[2] / 1e9]
    assert len(out.pieces[0].samples) == 5


def test_long_batches_are_cut_into_frames_the_windower_takes() -> None:
    out = aligned_frames(
        PhoneTimeline(),
        sl.message(
            0, sl.readings(samples(2000), times(2000, 200.0), sensors=("totalacceleration",))
        ),
    )
    assert sum(len(p.samples) for p in out.pieces) == 2000
    assert all(len(p.samples) <= 1024 and (len(p.samples) - 1) / p.rate <= 5.0 for p in out.pieces)


# -- order -------------------------------------------------------------------------
def batch(mid: int, session: str = "s") -> schema.PhoneBatch:
    return schema.PhoneBatch("d", session, mid, {})


def ids(batches: list[schema.PhoneBatch]) -> list[int]:
    return [b.message_id for b in batches]


def test_out_of_order_batches_are_put_back_and_repeats_dropped() -> None:
    order = BatchOrder(horizon=2.0, max_held=8)
    got: list[int] = []
    for mid in [0, 2, 3, 1, 1, 3, 4, 0]:
        out, _ = order.push(batch(mid), 0.0)
        got += ids(out)
    assert got == [0, 1, 2, 3, 4]
    # 1 and 3 again, and 0 (still remembered as published) are repeats
    assert (order.reordered, order.duplicates, order.late, order.lost) == (2, 3, 0, 0)


def test_a_missing_batch_is_given_up_after_the_horizon() -> None:
    order = BatchOrder(horizon=2.0, max_held=8)
    order.push(batch(0), 0.0)
    assert ids(order.push(batch(2), 0.5)[0]) == []
    assert ids(order.due(2.0)) == []
    assert ids(order.due(2.5)) == [2]
    assert order.lost == 1
    assert ids(order.push(batch(1), 3.0)[0]) == [] and order.late == 1


def test_held_batches_are_bounded() -> None:
    order = BatchOrder(horizon=60.0, max_held=3)
    order.push(batch(0), 0.0)
    released = []
    for mid in (2, 4, 6, 8, 10):  # never the one expected: each waits for a gap
        released += ids(order.push(batch(mid), 0.0)[0])
    assert released == [2, 4] and sorted(order.held) == [6, 8, 10] and order.lost == 2


def test_a_new_recording_starts_over() -> None:
    order = BatchOrder(horizon=2.0, max_held=8)
    order.push(batch(7, "a"), 0.0)
    out, new = order.push(batch(0, "b"), 0.1)
    assert new and ids(out) == [0]


# -- hostile messages --------------------------------------------------------------
GOOD = sl.message(0, sl.readings(samples(3), times(3)))


def broken(**changes: object) -> bytes:
    message = json.loads(json.dumps(GOOD))
    message.update(changes)
    return json.dumps(message).encode()


def reading(**changes: object) -> bytes:
    first = dict(GOOD["payload"][0], **changes)
    return broken(payload=[first, *GOOD["payload"][1:]])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{" * 2 + b"", "bad_json"),
        (b"\xff\xfe not utf-8", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"messageId": NaN}', "bad_json"),
        (b"[" * 10_000 + b"]" * 10_000, "too_deep"),
        (b'{"a":' * 50 + b"1" + b"}" * 50, "too_deep"),
        (b" " * (MAX + 1), "too_large"),
        (broken(messageId=-1), "bad_json"),
        (broken(messageId="7"), "bad_json"),
        (broken(messageId=True), "bad_json"),
        (broken(deviceId=""), "bad_json"),
        (broken(deviceId="x" * 300), "bad_json"),
        (broken(deviceId=["x"]), "bad_json"),
        (broken(payload={"name": "accelerometer"}), "bad_json"),
        (broken(payload=["reading"]), "bad_json"),
        (reading(time=-5), "bad_time"),
        (reading(time=1.5e18), "bad_time"),
        (reading(time="1796000000000000000"), "bad_time"),
        (reading(time=1 << 64), "bad_time"),
        (reading(values={"x": 1, "y": 2}), "bad_json"),
        (reading(values={"x": 1, "y": 2, "z": "3"}), "bad_json"),
        (reading(values={"x": 1, "y": 2, "z": True}), "bad_json"),
        (reading(values=[1, 2, 3]), "bad_json"),
        (reading(values={"x": 7.5, "y": 0, "z": 0}).replace(b"7.5", b"1e999"), "not_finite"),
        (reading(values={"x": 7.5, "y": 0, "z": 0}).replace(b"7.5", b"Infinity"), "bad_json"),
    ],
)
def test_hostile_messages_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        schema.parse(payload, MAX)
    assert info.value.reason == reason


def test_depth_counts_brackets_outside_strings_only() -> None:
    assert schema.nesting_depth(b'{"a": "[[[[[[[[[[{{{{{{{{{{\\"]]]", "b": [1]}') == 2


@pytest.mark.parametrize(
    ("raw", "readable"),
    [
        ("4B6D2F0E-6C1A-4F53-9D9A-2F1E0C3B8A11", None),  # a valid id is kept as it is
        ("pixel-7", None),
        ("Bob's phone", "Bob-s-phone"),
        ("har/+/#", "har----"),
        ("../../etc", "etc"),
        ("service", "service"),  # reserved
        ("wrist\n", "wrist-"),
        ("", "phone"),
        ("😀" * 100, "phone"),
        ("a" * 65, "a" * 40),
    ],
    ids=lambda v: repr(v)[:20] if isinstance(v, str) else repr(v),
)
def test_hostile_device_ids_become_safe_stable_ids(raw: str, readable: str | None) -> None:
    device = phone_device_id(raw)
    assert validate_device_id(device) == device
    assert phone_device_id(raw) == device  # stable
    if readable is None:
        assert device == raw
    else:
        assert re.fullmatch(re.escape(readable) + "-[0-9a-f]{8}", device), device
    assert phone_device_id(raw, {device: "left-arm"}) == "left-arm"  # then --device-map
