"""``har gateway --source phone`` on a real Mosquitto: Sensor Logger over MQTT and HTTP, the page's
WebSocket, and every hostile input refused, counted and without effect on the other phones.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from websockets.sync.client import connect as ws_connect

from imu_har.ops.broker import free_port
from imu_har.protocol.codec import Frame, decode_frame
from imu_har.protocol.messages import Counters, DeviceStatus, ServiceStatus
from imu_har.runtime.client import Collector
from services.ble_gateway.app import GatewaySettings, build
from tests.support import sensorlogger as sl
from tests.support.publish import prediction

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]
T0 = time.time_ns()
NO_VERIFY = ssl.create_default_context()
NO_VERIFY.check_hostname, NO_VERIFY.verify_mode = False, ssl.CERT_NONE


def motion(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    acc = np.array([0.0, 0.3, 0.95]) + rng.normal(0, 0.2, (n, 3))
    return np.concatenate([acc, rng.normal(0, 60, (n, 3)), rng.normal(0, 20, (n, 3))], axis=1)


class Phones:
    """A running phone gateway and its addresses."""

    def __init__(self, broker, run_service, tmp_path: Path, **overrides) -> None:  # type: ignore[no-untyped-def]
        self.http, self.https = free_port(), free_port()
        options = {
            "mqtt_port": broker.port,
            "source": "phone",
            "phone_host": "127.0.0.1",
            "phone_http_port": self.http,
            "phone_https_port": self.https,
            "phone_dir": tmp_path / "phone",
            "status_interval": 0.5,
            "phone_reorder_seconds": 0.5,
            **overrides,
        }
        self.settings = GatewaySettings(**options)
        runtime, self.handler = build(self.settings)
        self.runtime = runtime
        self.service = run_service(runtime, self.handler)

    def push(self, body: bytes, query: str = "", headers: dict | None = None) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.http}/sensor-logger{query}"
        request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def rejected(self, reason: str) -> int:
        return self.runtime.counters.get(reason)


def raw_post(port: int, header: str, body: bytes) -> str:
    """POST with a hand-set framing header; the status line (the server may close early)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"POST /sensor-logger HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode()
        try:
            sock.sendall(head + body)
        except OSError:
            pass  # refused while sending: the answer is still there to read
        return sock.recv(4096).decode(errors="replace").splitlines()[0]


def frames_of(collector: Collector, device: str, samples: int, timeout: float = 10) -> list[Frame]:
    topic = f"har/{device}/imu"

    def enough(msgs: list) -> bool:  # type: ignore[type-arg]
        got = [decode_frame(bytes(m.payload)) for m in msgs if m.topic == topic]
        return sum(len(f.samples) for f in got) >= samples

    msgs = collector.wait_for(predicate=enough, timeout=timeout)
    return [decode_frame(bytes(m.payload)) for m in msgs if m.topic == topic]


def last_status(collector: Collector, device: str) -> DeviceStatus:
    statuses = [m for m in collector.messages if m.topic == f"har/{device}/status"]
    return DeviceStatus.from_payload(bytes(statuses[-1].payload))


def check_exact(frames: list[Frame], samples: np.ndarray, stamps: np.ndarray) -> None:
    """The frames hold exactly ``samples`` at exactly ``stamps`` (ns)."""
    got = np.concatenate([f.samples for f in frames])
    np.testing.assert_allclose(got, samples, rtol=1e-6, atol=1e-5)
    placed = np.concatenate(
        [(f.device_time or 0.0) + np.arange(len(f.samples)) / f.rate for f in frames]
    )
    np.testing.assert_allclose(placed, stamps / 1e9, rtol=0, atol=2e-6)
    assert [f.seq for f in frames] == list(range(len(frames)))


@pytest.mark.parametrize("kind", ["android", "android-no-total", "ios"])
def test_sensor_logger_over_mqtt_gives_exact_frames(
    broker, run_service, mqtt_client, tmp_path, kind
):  # type: ignore[no-untyped-def]
    frames = Collector(mqtt_client, "har/+/imu")
    statuses = Collector(mqtt_client, "har/+/status")
    Phones(broker, run_service, tmp_path)
    data = motion(300)
    messages = sl.batches(data, T0, 100.0, 100, kind, device=f"pixel-{kind}")
    for message in messages:
        mqtt_client.publish("sensor-logger", sl.encoded(message), qos=1)
    got = frames_of(frames, f"pixel-{kind}", 300)
    stamps = T0 + np.round(np.arange(300) * 1e7).astype(np.int64)
    check_exact(got, data, stamps)
    statuses.wait_for(predicate=lambda ms: any(b'"streaming"' in m.payload for m in ms))
    status = last_status(statuses, f"pixel-{kind}")
    assert status.source == "phone" and status.address == "mqtt"
    assert status.acceleration == ("total" if kind == "android" else "accelerometer+gravity")


def test_sensor_logger_over_http_gives_exact_frames(broker, run_service, mqtt_client, tmp_path):  # type: ignore[no-untyped-def]
    frames = Collector(mqtt_client, "har/+/imu")
    phones = Phones(broker, run_service, tmp_path)
    data = motion(200, seed=1)
    for message in sl.batches(data, T0, 50.0, 50, "ios", device="iphone-http"):
        assert phones.push(sl.encoded(message), headers={"Content-Type": "application/json"}) == (
            200,
            "ok\n",
        )
    stamps = T0 + np.round(np.arange(200) * 2e7).astype(np.int64)
    check_exact(frames_of(frames, "iphone-http", 200), data, stamps)


def test_out_of_order_and_repeated_batches_over_mqtt(broker, run_service, mqtt_client, tmp_path):  # type: ignore[no-untyped-def]
    frames = Collector(mqtt_client, "har/+/imu")
    statuses = Collector(mqtt_client, "har/+/status")
    Phones(broker, run_service, tmp_path)
    data = motion(500, seed=2)
    messages = sl.batches(data, T0, 100.0, 50, device="shuffled")
    order = [0, 2, 1, 3, 3, 5, 4, 6, 7, 1, 8, 9]
    for k in order:
        mqtt_client.publish("sensor-logger", sl.encoded(messages[k]), qos=1)
    got = frames_of(frames, "shuffled", 500)
    stamps = T0 + np.round(np.arange(500) * 1e7).astype(np.int64)
    check_exact(got, data, stamps)

    def counted(msgs: list) -> bool:  # type: ignore[type-arg]
        mine = [
            DeviceStatus.from_payload(bytes(m.payload))
            for m in msgs
            if b"shuffled" in m.topic.encode()
        ]
        return bool(mine) and mine[-1].duplicates == 2 and mine[-1].reordered == 2

    statuses.wait_for(predicate=counted, timeout=5)
    status = last_status(statuses, "shuffled")
    assert (status.duplicates, status.reordered, status.late, status.lost_packets) == (2, 2, 0, 0)


def test_a_phone_account_names_the_device_and_the_payload_cannot(
    broker, run_service, mqtt_client, tmp_path
):  # type: ignore[no-untyped-def]
    frames = Collector(mqtt_client, "har/+/imu")
    phones = Phones(broker, run_service, tmp_path)
    message = sl.batches(motion(20), T0, 100.0, 20, device="someone-else")[0]
    mqtt_client.publish("sensor-logger/wrist-7", sl.encoded(message), qos=1)
    assert len(frames_of(frames, "wrist-7", 20)) == 1
    mqtt_client.publish("sensor-logger/service", sl.encoded(message), qos=1)  # reserved name
    deadline = time.monotonic() + 5
    while phones.rejected("bad_device") < 1:
        assert time.monotonic() < deadline, "a reserved topic level was not refused"
        time.sleep(0.05)
    assert {m.topic for m in frames.messages} == {"har/wrist-7/imu"}


HOSTILE = [
    (b"{not json", "bad_json", 400),
    (b"[" * 5000 + b"]" * 5000, "too_deep", 400),
    (b'{"messageId": 1, "sessionId": "s", "deviceId": "d", "payload": [{"name": "gyroscope", '
     b'"time": -1, "values": {"x": 0, "y": 0, "z": 0}}]}', "bad_time", 400),
    (b'{"messageId": 1, "sessionId": "s", "deviceId": "d", "payload": [{"name": "gyroscope", '
     b'"time": 1, "values": {"x": NaN, "y": 0, "z": 0}}]}', "bad_json", 400),
]  # fmt: skip


def test_hostile_pushes_are_refused_counted_and_harmless(
    broker, run_service, mqtt_client, tmp_path
):  # type: ignore[no-untyped-def]
    frames = Collector(mqtt_client, "har/+/imu")
    phones = Phones(broker, run_service, tmp_path)
    data = motion(400, seed=3)
    good = sl.batches(data, T0, 100.0, 50, device="good-phone")
    for k, message in enumerate(good):
        body, reason, code = HOSTILE[k % len(HOSTILE)]
        status, text = phones.push(body)
        assert status == code and text.startswith(reason + ":"), (reason, status, text)
        assert phones.push(sl.encoded(message)) == (200, "ok\n")
    for _body, reason, _code in HOSTILE:
        assert phones.rejected(reason) >= 1, reason
    # too large: refused from its Content-Length before a byte of it is read, or once the
    # streamed body passes the limit
    assert raw_post(phones.http, "Content-Length: 1073741824", b"").startswith("HTTP/1.1 413")
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    assert raw_post(phones.http, "Transfer-Encoding: chunked", chunk * 17).startswith(
        "HTTP/1.1 413"
    )
    assert phones.rejected("too_large") == 2
    stamps = T0 + np.round(np.arange(400) * 1e7).astype(np.int64)
    check_exact(frames_of(frames, "good-phone", 400), data, stamps)
    # hostile device names become safe ids: never a topic level of their own choosing
    for name in ["har/+/#", "../../x", "service", "a\nb", "x" * 5000]:
        message = sl.message(0, sl.readings(data[:5], stamps[:5]), device=name)
        status, _text = phones.push(sl.encoded(message))
        assert status == (400 if len(name) > 256 else 200)
    for m in frames.messages:
        assert m.topic.count("/") == 2 and "+" not in m.topic and "#" not in m.topic


def test_budget_and_phone_bound(broker, run_service, mqtt_client, tmp_path):  # type: ignore[no-untyped-def]
    frames = Collector(mqtt_client, "har/+/imu")
    phones = Phones(broker, run_service, tmp_path, max_phones=2, phone_rate_limit=5.0)
    data = motion(5)
    stamps = T0 + np.arange(5) * 10_000_000
    codes = []
    for k in range(30):  # 30 at once: 10 (the burst) pass, the rest wait their turn
        body = sl.encoded(sl.message(k, sl.readings(data, stamps + k * 50_000_000), device="eager"))
        codes.append(phones.push(body)[0])
    assert codes.count(200) >= 10 and codes.count(429) >= 10
    assert phones.rejected("rate_limited") == codes.count(429)
    assert (
        phones.push(sl.encoded(sl.message(0, sl.readings(data, stamps), device="second")))[0] == 200
    )
    status, text = phones.push(sl.encoded(sl.message(0, sl.readings(data, stamps), device="third")))
    assert status == 429 and text.startswith("too_many_devices")
    frames_of(frames, "second", 5)
    assert "har/third/imu" not in {m.topic for m in frames.messages}


def test_beyond_loopback_a_token_is_required(broker, run_service, mqtt_client, tmp_path):  # type: ignore[no-untyped-def]
    phones = Phones(broker, run_service, tmp_path, phone_host="0.0.0.0")
    token_file = tmp_path / "phone" / "token"
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    body = sl.encoded(sl.batches(motion(5), T0, 100.0, 5, device="tok")[0])
    assert phones.push(body)[0] == 401
    assert phones.push(body, "?token=wrong-token-wrong-token")[0] == 401
    assert phones.push(body, f"?token={token}") == (200, "ok\n")
    assert phones.push(body, headers={"Authorization": f"Bearer {token}"})[0] == 200
    assert phones.rejected("unauthorized") == 2
    url = f"wss://127.0.0.1:{phones.https}/ws?device=tok"
    with pytest.raises(Exception, match=r"HTTP 403"), ws_connect(url, ssl=NO_VERIFY) as ws:
        ws.recv(timeout=5)
    status = Collector(mqtt_client, "har/service/gateway/status")
    status.wait_for(predicate=lambda ms: any(b'"phone"' in m.payload for m in ms))
    details = ServiceStatus.from_payload(bytes(status.messages[-1].payload)).details["phone"]
    assert details["token_required"] and token not in json.dumps(details)  # never published


def test_the_page_socket_streams_and_gets_predictions(broker, run_service, mqtt_client, tmp_path):  # type: ignore[no-untyped-def]
    frames = Collector(mqtt_client, "har/+/imu")
    phones = Phones(broker, run_service, tmp_path)
    with urllib.request.urlopen(f"https://127.0.0.1:{phones.https}/", context=NO_VERIFY) as page:
        assert b"devicemotion" in page.read()
    data = motion(60, seed=4)
    url = f"wss://127.0.0.1:{phones.https}/ws?device=my%20phone"
    with ws_connect(url, ssl=NO_VERIFY) as ws:
        hello = json.loads(ws.recv(timeout=5))
        device = hello["device"]
        assert hello["type"] == "hello" and device.startswith("my-phone-")
        for message in sl.batches(data, T0, 60.0, 30, device="ignored"):
            ws.send(sl.encoded(message))
        frames_of(frames, device, 60)
        ws.send(b"{broken")
        assert json.loads(ws.recv(timeout=5)) == {"type": "error", "reason": "bad_json"}
        # the classifier's prediction for this device comes back on the socket
        deadline = time.monotonic() + 10
        while True:
            mqtt_client.publish(
                f"har/{device}/prediction", prediction(device, 1, "Squat").to_payload()
            )
            try:
                reply = json.loads(ws.recv(timeout=0.5))
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no prediction reached the page"
        assert reply["type"] == "prediction" and reply["label"] == "Squat"
    assert phones.rejected("bad_json") == 1


def test_a_model_needing_channels_a_phone_lacks_says_so(broker, run_service, mqtt_client, tmp_path):  # type: ignore[no-untyped-def]
    statuses = Collector(mqtt_client, "har/+/status")
    Phones(broker, run_service, tmp_path)
    classifier = ServiceStatus(
        service="classifier",
        instance="test",
        state="online",
        counters=Counters(),
        details={
            "model": {
                "name": "default",
                "channels": ["acc_x", "acc_y", "acc_z", "mag_x", "mag_y", "mag_z"],
            }
        },
    )
    mqtt_client.publish(
        "har/service/classifier/status", classifier.to_payload(), qos=1, retain=True
    )
    stamps = T0 + np.arange(10) * 10_000_000
    no_mag = sl.readings(motion(10), stamps, "android", ("totalacceleration", "gyroscope"))
    mqtt_client.publish("sensor-logger", sl.encoded(sl.message(0, no_mag, device="no-mag")), qos=1)

    def told(msgs: list) -> bool:  # type: ignore[type-arg]
        mine = [
            DeviceStatus.from_payload(bytes(m.payload))
            for m in msgs
            if m.topic == "har/no-mag/status"
        ]
        return any(s.error and "mag_x" in s.error for s in mine)

    statuses.wait_for(predicate=told, timeout=10)
    status = last_status(statuses, "no-mag")
    assert status.channels == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert "channel_mismatch" in (status.error or "")
    mqtt_client.publish("har/service/classifier/status", b"", qos=1, retain=True)


def test_start_up_problems_stop_the_gateway_before_it_connects(tmp_path):  # type: ignore[no-untyped-def]
    from imu_har.runtime.skeleton import StartupError

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    base = {"source": "phone", "phone_host": "127.0.0.1", "phone_dir": tmp_path / "phone"}
    try:
        with pytest.raises(StartupError, match="Address already in use"):
            build(GatewaySettings(**base, phone_https_port=0, phone_http_port=port))
    finally:
        busy.close()
    with pytest.raises(StartupError, match="go together"):
        build(GatewaySettings(**base, phone_cert=tmp_path / "c.pem"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "token").write_text("../../etc/passwd\n")
    with pytest.raises(StartupError, match="does not hold a token"):
        build(GatewaySettings(**{**base, "phone_dir": tmp_path / "bad"}, phone_http_port=0))
