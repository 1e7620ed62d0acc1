"""The windower service over a real Mosquitto: exact windows, bad input, status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import pytest

from imu_har.protocol.codec import Frame, decode_window, encode_frame
from imu_har.protocol.messages import ServiceStatus
from imu_har.runtime.client import Collector, connect
from imu_har.windowing.clock import DeviceClock
from imu_har.windowing.windows import WindowSpec, cut_windows
from services.windower.app import WindowerSettings, build

pytestmark = pytest.mark.broker
T0 = time.time() - 60.0  # recent frames: far older or future ones are refused (issue 12.3)


def start_windower(broker, run_service, **overrides):  # type: ignore[no-untyped-def]
    settings = WindowerSettings(mqtt_port=broker.port, status_interval=0.3, **overrides)
    return run_service(*build(settings))


def jittery_frames(device: str, values: np.ndarray, rng: np.random.Generator) -> list[Frame]:
    """Frames of 1-8 samples, device timestamps, receive-time jitter, a 3 s gap, duplicates."""
    frames, start, seq, t_gap = [], 0, 0, 0.0
    while start < len(values):
        n = int(rng.integers(1, 9))
        chunk = values[start : start + n].astype(np.float32)
        if start > len(values) // 2 and t_gap == 0.0:
            t_gap = 3.0
        device_time = start / 50.0 + t_gap
        receive = T0 + device_time + (len(chunk) - 1) / 50.0 + rng.uniform(0, 0.03)
        frames.append(Frame(device, seq, receive, 50.0, chunk, device_time=device_time))
        if rng.random() < 0.1:
            frames.append(frames[-1])  # duplicate delivery
        start, seq = start + n, seq + 1
    return frames


def expected_windows(frames: list[Frame], spec: WindowSpec) -> list[np.ndarray]:
    clock, seen, times, values = DeviceClock(), set(), [], []
    for frame in frames:
        if frame.seq in seen:
            continue
        seen.add(frame.seq)
        times.append(
            clock.sample_times(
                len(frame.samples), frame.rate, frame.receive_time, frame.device_time
            )
        )
        values.append(frame.samples)
    return [w.samples for w in cut_windows(np.concatenate(values), spec, np.concatenate(times))]


def test_several_devices_with_jitter_gaps_and_duplicates(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    start_windower(broker, run_service, length=20, hop=5, rate=50.0, max_gap=1.0)
    windows = Collector(mqtt_client, "har/+/window")
    rng = np.random.default_rng(7)
    streams = {
        f"wrist-{i}": jittery_frames(f"wrist-{i}", rng.normal(size=(300, 9)), rng) for i in range(4)
    }
    for frames in zip(*streams.values(), strict=False):
        for frame in frames:
            mqtt_client.publish(f"har/{frame.device}/imu", encode_frame(frame), qos=1)
    spec = WindowSpec(20, 5, 50.0, 1.0)
    expected = {
        d: expected_windows(f[: min(map(len, streams.values()))], spec) for d, f in streams.items()
    }
    total = sum(map(len, expected.values()))
    got = windows.wait_for(total, timeout=20)
    time.sleep(0.5)  # anything extra would arrive now
    by_device: dict[str, list] = defaultdict(list)
    for message in windows.messages:
        window = decode_window(message.payload)
        assert message.topic == f"har/{window.device}/window"
        by_device[window.device].append(window)
    assert len(got) == total and len(windows.messages) == total
    for device, want in expected.items():
        have = sorted(by_device[device], key=lambda w: w.seq)
        assert [w.seq for w in have] == list(range(len(want)))
        for window, samples in zip(have, want, strict=True):
            np.testing.assert_array_equal(window.samples, samples)


BAD_PAYLOADS = {
    "truncated": lambda good: good[:10],
    "bad_version": lambda good: b"\x07" + good[1:],
    "not_finite": lambda good: good[:-4] + np.float32(np.nan).tobytes(),
    "bad_shape": lambda good: good[: 4 + 4 + 24] + b"\x08" + good[4 + 4 + 25 :],
    "too_large": lambda good: good + b"\0" * (10 * 1024 * 1024),
}


def latest_status(collector: Collector) -> ServiceStatus:
    return ServiceStatus.from_payload(collector.messages[-1].payload)


def test_bad_input_is_rejected_counted_and_others_keep_streaming(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    service = start_windower(broker, run_service, length=4, hop=4, rate=50.0)
    windows = Collector(mqtt_client, "har/good/window")
    statuses = Collector(mqtt_client, "har/service/windower/status")
    good = encode_frame(Frame("evil", 0, T0, 50.0, np.ones((2, 9), np.float32)))
    for make in BAD_PAYLOADS.values():
        mqtt_client.publish("har/evil/imu", make(good), qos=1)
    mqtt_client.publish("har/other/imu", good, qos=1)  # payload device differs from topic
    mqtt_client.publish("har/a..b/imu", good, qos=1)  # hostile id in the topic
    hostile = bytes([1, ord("F"), 3, 2]) + b"+#" + good[8:]
    mqtt_client.publish("har/evil/imu", hostile, qos=1)
    for seq in range(5):  # at Unix-time magnitudes the 8th grid point waits for a 9th sample
        frame = Frame("good", seq, T0 + seq * 0.04, 50.0, np.full((2, 9), seq, np.float32))
        mqtt_client.publish("har/good/imu", encode_frame(frame), qos=1)
    assert len(windows.wait_for(2, timeout=10)) == 2
    expected = set(BAD_PAYLOADS) | {"device_mismatch", "bad_device"}

    def counted(messages: list) -> bool:  # type: ignore[type-arg]
        if not messages:
            return False
        rejected = ServiceStatus.from_payload(messages[-1].payload).counters.rejected
        return expected <= set(rejected) and rejected.get("bad_device", 0) >= 2

    statuses.wait_for(predicate=counted, timeout=10)
    status = latest_status(statuses)
    assert expected <= set(status.counters.rejected), status.counters.rejected
    assert status.state == "online" and service.thread.is_alive()


def state_is(state: str):  # type: ignore[no-untyped-def]
    return lambda msgs: bool(msgs) and json.loads(msgs[-1].payload)["state"] == state


def test_status_is_retained_and_goes_offline_on_stop(broker, run_service):  # type: ignore[no-untyped-def]
    service = start_windower(broker, run_service)
    service.runtime.publish_status(force=True)
    late = connect(broker.host, broker.port)  # subscribes after the fact: sees the retained copy
    statuses = Collector(late, "har/service/windower/status")
    first = statuses.wait_for(predicate=state_is("online"))[0]
    assert first.retain and json.loads(first.payload)["details"]["length"] == 20
    service.stop()
    assert statuses.wait_for(predicate=state_is("offline"), timeout=10)
    late.disconnect()


def test_last_will_marks_a_killed_service_offline(broker, mqtt_client):  # type: ignore[no-untyped-def]
    statuses = Collector(mqtt_client, "har/service/windower/status")
    env = {**os.environ, "HAR_MQTT_PORT": str(broker.port), "HAR_MQTT_KEEPALIVE": "5"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.windower"], env=env, stderr=subprocess.PIPE
    )
    try:
        assert statuses.wait_for(predicate=state_is("online"), timeout=20)
        proc.kill()  # no chance to say goodbye: the broker publishes the Last Will
        assert statuses.wait_for(predicate=state_is("offline"), timeout=20)
    finally:
        proc.kill()
        proc.wait()


def test_reconnects_after_broker_restart(broker, run_service, mqtt_client):  # type: ignore[no-untyped-def]
    service = start_windower(broker, run_service, length=4, hop=4)
    broker.restart(down_seconds=1.0)
    assert service.runtime.ready.wait(30), "windower did not reconnect"
    client = connect(broker.host, broker.port)
    windows = Collector(client, "har/after/window")
    for seq in range(5):
        frame = Frame("after", seq, time.time() + seq * 0.04, 50.0, np.ones((2, 9), np.float32))
        client.publish("har/after/imu", encode_frame(frame), qos=1)
    assert len(windows.wait_for(2, timeout=10)) == 2
    assert service.runtime.counters.get("disconnects") >= 1
    client.disconnect()


def test_a_frame_from_the_future_neither_silences_its_device_nor_needs_a_restart(
    broker, run_service, mqtt_client
):  # type: ignore[no-untyped-def]
    """Issue 12.3: a frame received 'at' now + 10^6 s used to drop every later sample."""
    service = start_windower(broker, run_service, length=4, hop=4)
    windows = Collector(mqtt_client, "har/victim/window")
    statuses = Collector(mqtt_client, "har/service/windower/status")
    now = time.time()
    attack = Frame("victim", 0, now + 1e6, 50.0, np.ones((2, 9), np.float32))
    mqtt_client.publish("har/victim/imu", encode_frame(attack), qos=1)
    for seq in range(1, 6):
        frame = Frame("victim", seq, now + seq * 0.04, 50.0, np.ones((2, 9), np.float32))
        mqtt_client.publish("har/victim/imu", encode_frame(frame), qos=1)
    assert len(windows.wait_for(2, timeout=10)) >= 2
    assert all(decode_window(m.payload).end < now + 5 for m in windows.messages)

    def counted(messages: list) -> bool:  # type: ignore[type-arg]
        return bool(messages) and "time_in_future" in latest_status(statuses).counters.rejected

    statuses.wait_for(predicate=counted, timeout=10)
    assert service.thread.is_alive()
