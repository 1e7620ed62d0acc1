"""The window fast path accepts exactly what decode_window accepts (finiteness deferred)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imu_har.protocol.codec import (
    DEFAULT_CHANNELS,
    DEFAULT_UNITS,
    Window,
    decode_window,
    encode_window,
)
from imu_har.protocol.errors import PayloadError
from services.classifier.fastpath import DeviceIds, fast_window

windows = st.builds(
    Window,
    device=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,20}", fullmatch=True).filter(
        lambda d: ".." not in d and d.lower() not in {"service", "model", "classifier"}
    ),
    seq=st.integers(0, 2**32 - 1),
    start=st.floats(0, 2e9),
    end=st.just(2e9 + 1),
    rate=st.sampled_from([25.0, 50.0, 100.0]),
    samples=st.integers(1, 60).map(
        lambda n: np.random.default_rng(n).normal(0, 5, (n, 9)).astype(np.float32)
    ),
    source_time=st.floats(0, 2e9),
)


def same(a: Window, b: Window) -> bool:
    return (a.device, a.seq, a.start, a.end, a.rate, a.source_time, a.channels, a.units) == (
        b.device,
        b.seq,
        b.start,
        b.end,
        b.rate,
        b.source_time,
        b.channels,
        b.units,
    ) and np.array_equal(a.samples, b.samples, equal_nan=True)


def check(payload: bytes) -> Window | None:
    """Whatever the fast path accepts, decode_window accepts identically (or says not_finite)."""
    fast = fast_window(payload, DeviceIds())
    if fast is None:
        return None
    try:
        slow = decode_window(payload)
    except PayloadError as exc:
        assert exc.reason == "not_finite" and not np.isfinite(fast.samples).all(), exc
        return fast
    assert same(fast, slow)
    return fast


@settings(max_examples=150, deadline=None)
@given(window=windows)
def test_valid_windows_take_the_fast_path(window: Window) -> None:
    assert check(encode_window(window)) is not None


@settings(max_examples=400, deadline=None)
@given(
    window=windows,
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 10),
)
def test_damaged_payloads_never_pass_the_fast_path_wrongly(
    window: Window, flips: list[tuple[int, int]], cut: int
) -> None:
    payload = bytearray(encode_window(window))
    for at, value in flips:
        if at < len(payload):
            payload[at] = value
    check(bytes(payload[: len(payload) - cut]))


@pytest.mark.parametrize(
    "payload",
    [
        encode_window(
            Window(
                "d",
                0,
                1.0,
                2.0,
                50.0,
                np.zeros((5, 3), np.float32),
                0.0,
                DEFAULT_CHANNELS[:3],
                DEFAULT_UNITS[:3],
            )
        ),
        b"",
        b"\x01W\x02",
    ],
)
def test_unusual_payloads_fall_back(payload: bytes) -> None:
    assert fast_window(payload, DeviceIds()) is None


def test_non_finite_samples_are_left_to_the_batch_check() -> None:
    samples = np.zeros((5, 9), np.float32)
    samples[2, 4] = np.inf
    payload = bytearray(encode_window(Window("d", 0, 1.0, 2.0, 50.0, np.zeros((5, 9), np.float32))))
    payload[-9 * 4 * 3 + 4 * 4 : -9 * 4 * 3 + 4 * 5] = np.float32(np.inf).tobytes()
    window = check(bytes(payload))
    assert window is not None and not np.isfinite(window.samples).all()
