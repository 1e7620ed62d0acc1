"""BLE packet formats against the shared vectors; sequence gaps, wrap-around, the core."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imu_har.protocol.codec import decode_frame
from imu_har.protocol.errors import PayloadError
from services.ble_gateway import packets
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.link import DeviceLink
from services.ble_gateway.settings import GatewaySettings

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "firmware" / "test_vectors.json").read_text()
)


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_vectors_decode_and_encode(case: dict) -> None:
    data = bytes.fromhex(case["hex"])
    packet = packets.decode(case["format"], data)
    np.testing.assert_allclose(packet.samples, np.array(case["decoded"]), rtol=1e-6, atol=1e-5)
    samples = np.array(case["input"], dtype=np.float32)
    if case["format"] == "batched":
        assert packet.seq == case["seq"]
        assert packet.device_time_ms == case["device_time_ms"]
        assert packet.rate == case["rate_dhz"] / 10
        encoded = packets.encode_batched(samples, case["seq"], case["device_time_ms"], 50.0)
        encoded = encoded[:8] + data[8:10] + encoded[10:]  # rate field checked above
        assert encoded == data
    else:
        assert packet.seq is None and packet.device_time_ms is None
        assert packets.encode_legacy(samples, case["padded"]) == data


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["note"])
def test_invalid_vectors_raise_payload_error(case: dict) -> None:
    with pytest.raises(PayloadError) as info:
        packets.decode(case["format"], bytes.fromhex(case["hex"]))
    assert info.value.reason == case["reason"]


def test_vectorized_encoder_equals_single_encoder() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 20, (4, 7, 9)).astype(np.float32)
    seqs, times = np.array([0, 65535, 12, 400]), np.array([0, 2**32 - 1, 5, 99])
    many = packets.encode_batched_many(samples, seqs, times, 50.0)
    for i in range(4):
        assert many[i] == packets.encode_batched(samples[i], int(seqs[i]), int(times[i]), 50.0)


def test_samples_per_packet_fits_mtu() -> None:
    assert packets.samples_per_packet(247) == 13
    assert packets.samples_per_packet(31) == 1
    with pytest.raises(ValueError, match="too small"):
        packets.samples_per_packet(23)


def test_sequence_gaps_wrap_duplicates_and_restarts() -> None:
    tracker = packets.SequenceTracker()
    kinds = [tracker.update(s) for s in (65533, 65534, 65535, 0, 1, 4, 4, 5, 100, 7)]
    assert kinds == ["first", "ok", "ok", "ok", "ok", "gap", "duplicate", "ok", "gap", "restart"]
    assert tracker.lost == 2 + 94
    tracker.reset()
    assert tracker.update(3) == "first" and tracker.lost == 96


def test_device_clock_unwraps() -> None:
    clock = packets.ClockUnwrapper()
    assert clock.seconds(2**32 - 1000) == pytest.approx((2**32 - 1000) / 1000)
    assert clock.seconds(500) == pytest.approx((2**32 + 500) / 1000)
    assert clock.seconds(400) == pytest.approx((2**32 + 400) / 1000)  # small step back: no wrap


def test_core_publishes_frames_counts_gaps_and_bad_packets() -> None:
    sent: list[tuple[str, bytes, int, bool]] = []
    rejected: list[str] = []
    core = GatewayCore(
        lambda *m: sent.append(m), GatewaySettings(), reject=lambda r, _t: rejected.append(r)
    )
    link = core.add(DeviceLink("wrist-1", rate=50.0))
    samples = np.zeros((3, 9), np.float32)
    samples[:, 2] = 1.0
    for seq in (65534, 65535, 2):  # wraps, then loses 0 and 1
        data = packets.encode_batched(samples, seq, 1000 * seq, 50.0)
        assert core.on_packet("wrist-1", data, 1_700_000_000.0 + seq)
    assert core.on_packet("wrist-1", data, 1_700_000_001.0) is False  # duplicate seq 2
    assert core.on_packet("wrist-1", b"\x01\x02garbage", 1_700_000_001.0) is False
    assert core.on_packet("nobody", data, 1_700_000_001.0) is False
    frames = [decode_frame(p) for t, p, _q, _r in sent if t == "har/wrist-1/imu"]
    assert [f.seq for f in frames] == [0, 1, 2]
    assert frames[0].device_time == pytest.approx(65534.0)
    assert frames[0].samples[:, 2].tolist() == [1.0, 1.0, 1.0]
    assert link.seq.lost == 2 and link.decode_errors == 1 and link.state == "streaming"
    assert rejected == ["duplicate", "truncated", "unknown_device"]
    status = json.loads([p for t, p, _q, r in sent if t == "har/wrist-1/status" and r][-1])
    assert status["state"] == "streaming"
    core.publish_statuses(0.0, force=True)
    status = json.loads([p for t, p, _q, _r in sent if t == "har/wrist-1/status"][-1])
    assert status["lost_packets"] == 2 and status["decode_errors"] == 1 and status["frames"] == 3


def test_core_batch_sends_frames_in_one_publish_many_call() -> None:
    single: list[tuple[str, bytes, int, bool]] = []
    batches: list[list[tuple[str, bytes]]] = []
    core = GatewayCore(lambda *m: single.append(m), GatewaySettings(), publish_many=batches.append)
    core.add(DeviceLink("wrist-1", rate=50.0))
    core.add(DeviceLink("wrist-2", rate=50.0))
    samples = np.zeros((13, 9), np.float32)
    with core.batch():
        for seq in range(3):
            for device in ("wrist-1", "wrist-2"):
                data = packets.encode_batched(samples, seq, 260 * seq, 50.0)
                assert core.on_packet(device, data, 1_700_000_000.0 + seq)
        assert batches == []  # held until the batch ends
    assert len(batches) == 1
    assert [t for t, _p in batches[0]] == ["har/wrist-1/imu", "har/wrist-2/imu"] * 3
    assert [decode_frame(p).seq for _t, p in batches[0]] == [0, 0, 1, 1, 2, 2]
    assert all(t.endswith("/status") for t, *_ in single)  # statuses are not held
    core.on_packet("wrist-1", packets.encode_batched(samples, 3, 780, 50.0), 1_700_000_003.0)
    assert single[-1][0] == "har/wrist-1/imu" and len(batches) == 1  # outside: one by one


def test_core_batch_is_off_at_qos_1() -> None:
    single: list[tuple[str, bytes, int, bool]] = []
    batches: list[list[tuple[str, bytes]]] = []
    settings = GatewaySettings(qos=1)
    core = GatewayCore(lambda *m: single.append(m), settings, publish_many=batches.append)
    core.add(DeviceLink("wrist-1", rate=50.0))
    with core.batch():
        core.on_packet(
            "wrist-1", packets.encode_batched(np.zeros((13, 9), np.float32), 0, 0, 50.0), 1.0
        )
    assert batches == [] and [m[2] for m in single if m[0].endswith("/imu")] == [1]
