"""Binary frame and window codecs: round trips (property-based) and every rejection."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from imu_har.protocol.codec import (
    DEFAULT_CHANNELS,
    MAX_PAYLOAD_BYTES,
    Frame,
    Window,
    decode_frame,
    decode_window,
    encode_frame,
    encode_window,
)
from imu_har.protocol.errors import PayloadError

device_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,20}", fullmatch=True).filter(
    lambda s: (
        ".." not in s
        and s.lower() not in {"service", "recorder", "classifier", "model", "windower", "gateway"}
    )
)
finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
times = st.floats(0, 4e9, allow_nan=False)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    n_ch = draw(st.integers(1, 12))
    default = draw(st.booleans())
    if default:
        channels, units, n_ch = DEFAULT_CHANNELS, None, 9
    else:
        channels = tuple(f"ch{i}" for i in range(n_ch))
        units = tuple(draw(st.sampled_from(["g", "deg/s", "uT", "m/s2"])) for _ in range(n_ch))
    n = draw(st.integers(1, 40))
    samples = draw(hnp.arrays(np.float32, (n, n_ch), elements=finite))
    kwargs = {} if units is None else {"channels": channels, "units": units}
    return Frame(
        device=draw(device_ids),
        seq=draw(st.integers(0, 2**32 - 1)),
        receive_time=draw(times),
        rate=draw(st.floats(0.125, 10_000, width=32)),
        samples=samples,
        device_time=draw(st.none() | times),
        **kwargs,
    )


@given(frames())
@settings(max_examples=150, deadline=None)
def test_frame_round_trip(frame: Frame) -> None:
    decoded = decode_frame(encode_frame(frame))
    assert decoded.device == frame.device and decoded.seq == frame.seq
    assert decoded.receive_time == frame.receive_time and decoded.device_time == frame.device_time
    assert decoded.rate == pytest.approx(frame.rate, rel=1e-6)
    assert decoded.channels == frame.channels and decoded.units == frame.units
    np.testing.assert_array_equal(decoded.samples, frame.samples)


@given(device_ids, st.integers(0, 2**32 - 1), times, st.integers(2, 200), st.integers(1, 12))
@settings(max_examples=80, deadline=None)
def test_window_round_trip(device: str, seq: int, start: float, n: int, n_ch: int) -> None:
    samples = np.random.default_rng(seq % 1000).normal(size=(n, n_ch)).astype(np.float32)
    window = Window(
        device,
        seq,
        start,
        start + n / 50,
        50.0,
        samples,
        source_time=start,
        channels=tuple(f"c{i}" for i in range(n_ch)),
        units=("g",) * n_ch,
    )
    decoded = decode_window(encode_window(window))
    assert (decoded.device, decoded.seq, decoded.start, decoded.end) == (
        device,
        seq,
        window.start,
        window.end,
    )
    np.testing.assert_array_equal(decoded.samples, samples)
    assert decoded.channels == window.channels


def _frame(**overrides: object) -> Frame:
    values: dict[str, object] = {
        "device": "dev-1",
        "seq": 1,
        "receive_time": 1.7e9,
        "rate": 50.0,
        "samples": np.ones((5, 9), np.float32),
        "device_time": 2.0,
    }
    values.update(overrides)
    return Frame(**values)  # type: ignore[arg-type]


def test_default_layout_is_compact() -> None:
    payload = encode_frame(_frame())
    assert len(payload) == 4 + len("dev-1") + 27 + 5 * 9 * 4


def _reason(payload: bytes, decoder=decode_frame) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(PayloadError) as info:
        decoder(payload)
    return info.value.reason


def test_rejects_truncated_and_trailing() -> None:
    good = encode_frame(_frame())
    for cut in (0, 2, 4, 8, 20, len(good) - 1):
        assert _reason(good[:cut]) == "truncated"
    assert _reason(good + b"\0") == "trailing_bytes"


def test_rejects_wrong_version_and_kind() -> None:
    good = bytearray(encode_frame(_frame()))
    good[0] = 2
    assert _reason(bytes(good)) == "bad_version"
    window = encode_window(Window("d", 0, 1.0, 2.0, 50.0, np.zeros((4, 9), np.float32)))
    assert _reason(window) == "bad_kind"
    assert _reason(encode_frame(_frame()), decode_window) == "bad_kind"


def test_rejects_nan_and_infinity() -> None:
    good = bytearray(encode_frame(_frame()))
    good[-4:] = struct.pack("<f", float("nan"))
    assert _reason(bytes(good)) == "not_finite"
    good[-4:] = struct.pack("<f", float("inf"))
    assert _reason(bytes(good)) == "not_finite"
    with pytest.raises(PayloadError):
        encode_frame(_frame(samples=np.full((2, 9), np.nan, np.float32)))


def test_rejects_wrong_channel_count_and_shape() -> None:
    payload = bytearray(encode_frame(_frame()))
    channel_count_at = 4 + len("dev-1") + 24
    payload[channel_count_at] = 8  # default layout claims 8 channels
    assert _reason(bytes(payload)) == "bad_shape"
    with pytest.raises(PayloadError):
        encode_frame(_frame(samples=np.ones((5, 8), np.float32)))


def test_rejects_huge_payload() -> None:
    assert _reason(b"\x01F" + b"\0" * (10 * 1024 * 1024)) == "too_large"
    assert MAX_PAYLOAD_BYTES < 10 * 1024 * 1024


@pytest.mark.parametrize(
    "device", ["a/b", "+", "#", "..", "a..b", "", "x" * 65, "dev\n1", "service", "../etc"]
)
def test_rejects_hostile_device_ids(device: str) -> None:
    raw = device.encode()
    payload = bytes([1, ord("F"), 0x03, len(raw)]) + raw + encode_frame(_frame())[4 + 5 :]
    assert _reason(payload) in {"bad_device", "truncated"}
    with pytest.raises(PayloadError):
        encode_frame(_frame(device=device))


def test_rejects_bad_times_and_rates() -> None:
    with pytest.raises(PayloadError, match="bad_rate"):
        encode_frame(_frame(rate=0.0))
    with pytest.raises(PayloadError, match="bad_time"):
        encode_frame(_frame(receive_time=float("nan")))
    with pytest.raises(PayloadError, match="bad_time"):
        encode_window(Window("d", 0, 5.0, 4.0, 50.0, np.zeros((4, 9), np.float32)))
    decoded = decode_window(
        encode_window(Window("d", 0, 4.0, 5.0, 50.0, np.zeros((4, 9), np.float32)))
    )
    assert decoded.end == 5.0


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_garbage_never_escapes_payload_error(data: bytes) -> None:
    for decoder in (decode_frame, decode_window):
        try:
            decoder(data)
        except PayloadError:
            pass
