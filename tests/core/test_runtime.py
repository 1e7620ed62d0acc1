"""The shared runtime against a real broker: dynamic subscriptions and the receive path."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from imu_har.runtime.service import Inbound, ServiceRuntime
from imu_har.runtime.settings import MqttSettings


class Recording:
    """A handler that keeps every message it is given."""

    def __init__(self, subs: list[tuple[str, int]]) -> None:
        self.subs = subs
        self.messages: list[Inbound] = []
        self.lock = threading.Lock()

    def subscriptions(self) -> list[tuple[str, int]]:
        return self.subs

    def handle_batch(self, messages: list[Inbound]) -> None:
        with self.lock:
            self.messages.extend(messages)

    def tick(self, now: float) -> None: ...

    def details(self) -> dict[str, Any]:
        return {}

    def close(self) -> None: ...

    def topics(self) -> list[str]:
        with self.lock:
            return [m.topic for m in self.messages]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Inbound]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        with self.lock:
            return list(self.messages)


def runtime_for(broker, name: str = "rt") -> ServiceRuntime:  # type: ignore[no-untyped-def]
    return ServiceRuntime(name, MqttSettings(mqtt_port=broker.port, log_level="WARNING"))


def test_dynamic_subscribe_reports_the_grant_then_delivers(broker, mqtt_client, run_service):  # type: ignore[no-untyped-def]
    runtime = runtime_for(broker)
    handler = Recording([("rt/fixed", 1)])
    run_service(runtime, handler)
    granted: list[list[Any]] = []
    acked = threading.Event()

    def done(codes: list[Any]) -> None:
        granted.append(codes)
        acked.set()

    assert runtime.subscribe([("rt/dyn/+", 1)], done)
    assert acked.wait(10)
    assert [c.value for c in granted[0]] == [1]
    mqtt_client.publish("rt/dyn/a", b"1", qos=1).wait_for_publish(5)
    mqtt_client.publish("rt/fixed", b"2", qos=1).wait_for_publish(5)
    got = handler.wait_for(2)
    assert sorted(m.topic for m in got) == ["rt/dyn/a", "rt/fixed"]

    gone = threading.Event()
    assert runtime.unsubscribe(["rt/dyn/+"], lambda _codes: gone.set())
    assert gone.wait(10)
    mqtt_client.publish("rt/dyn/b", b"3", qos=1).wait_for_publish(5)
    mqtt_client.publish("rt/fixed", b"4", qos=1).wait_for_publish(5)
    got = handler.wait_for(3)
    time.sleep(0.3)  # a stray rt/dyn/b would arrive before or with rt/fixed's second message
    assert handler.topics().count("rt/dyn/b") == 0
    assert [m.payload for m in got if m.topic == "rt/fixed"] == [b"2", b"4"]


def test_subscribe_before_connecting_reports_false(broker):  # type: ignore[no-untyped-def]
    runtime = runtime_for(broker, "rt-offline")
    assert runtime.subscribe([("rt/x", 0)]) is False


# -- the fast receive path -------------------------------------------------------------


def _packet(topic: str, payload: bytes, qos: int = 0, retain: bool = False, mid: int = 0) -> bytes:
    """A v5 PUBLISH packet without properties, as the broker sends it."""
    from imu_har.runtime.batchpub import publish_packet

    return publish_packet(topic, payload, qos, mid, retain)


def test_fast_reader_cuts_packets_the_same_however_the_bytes_arrive() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from imu_har.runtime.fastrecv import FastReceiveClient, RawPublish

    messages = [
        RawPublish("har/a/window", b"x" * 5, 0, False, 0),
        RawPublish("har/ü/imu", b"", 0, True, 0),
        RawPublish("har/b/window", bytes(range(256)) * 70, 1, False, 7),  # 3-byte length
        RawPublish("t", b"y" * 200, 0, False, 0),
    ]
    stream = b"".join(_packet(m.topic, m.payload, m.qos, m.retain, m.mid) for m in messages)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(0, len(stream)), max_size=12))
    def check(cuts: list[int]) -> None:
        client = FastReceiveClient(
            CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True
        )
        got: list[RawPublish] = []
        client.on_publishes = got.extend
        edges = [0, *sorted(cuts), len(stream)]
        for a, b in itertools.pairwise(edges):
            client._rx += stream[a:b]
            assert client._process(client.on_publishes) == 0
        assert got == messages
        assert not client._rx

    check()


def test_fast_reader_leaves_packets_with_properties_to_paho() -> None:
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from imu_har.runtime.fastrecv import FastReceiveClient

    client = FastReceiveClient(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    plain: list[Any] = []
    slow: list[Any] = []
    client.on_publishes = plain.extend
    client.on_message = lambda _c, _u, msg: slow.append((msg.topic, msg.payload, plain[:]))
    # a PUBLISH with a response topic property (0x08) between two plain ones
    props = b"\x08" + len(b"re/ply").to_bytes(2, "big") + b"re/ply"
    name = b"cmd"
    body = len(name).to_bytes(2, "big") + name + bytes([len(props)]) + props + b"go"
    with_props = bytes([0x30, len(body)]) + body
    client._rx += _packet("a", b"1") + with_props + _packet("b", b"2")
    assert client._process(client.on_publishes) == 0
    assert [m.topic for m in plain] == ["a", "b"]
    # paho handled the command in order: after "a" was delivered, before "b"
    assert [(t, p, [m.topic for m in seen]) for t, p, seen in slow] == [("cmd", b"go", ["a"])]


def _exchange(broker, fast: bool) -> list[tuple[str, bytes, int, bool]]:  # type: ignore[no-untyped-def]
    """What a runtime receives of a fixed mix of messages, with or without fast receive."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from imu_har.runtime.client import connect

    settings = MqttSettings(mqtt_port=broker.port, log_level="WARNING", mqtt_fast_receive=fast)
    runtime = ServiceRuntime(f"rt-fast-{fast}", settings)
    handler = Recording([("mix/#", 1)])
    sender = connect(broker.host, broker.port)
    sender.publish("mix/retained", b"r", qos=1, retain=True).wait_for_publish(5)
    thread = threading.Thread(target=runtime.run, args=(handler,), daemon=True)
    thread.start()
    assert runtime.ready.wait(10)
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "mix/reply"
        infos = [sender.publish(f"mix/q0/{i}", bytes([i % 256]) * i, qos=0) for i in range(300)]
        infos.append(sender.publish("mix/big", b"B" * 700_000, qos=1))
        infos.append(sender.publish("mix/cmd", b"{}", qos=1, properties=props))
        infos += [sender.publish(f"mix/q1/{i}", b"%d" % i, qos=1) for i in range(50)]
        for info in infos:
            info.wait_for_publish(10)
        got = handler.wait_for(353, timeout=20)
    finally:
        runtime.stop()
        thread.join(10)
        sender.publish("mix/retained", b"", qos=1, retain=True).wait_for_publish(5)
        sender.disconnect()
    assert runtime.counters.messages_in == 353
    replies = [m for m in got if m.topic == "mix/cmd"]
    assert replies and replies[0].properties.ResponseTopic == "mix/reply"  # type: ignore[union-attr]
    return [(m.topic, m.payload, m.qos, m.retain) for m in got]


def test_fast_receive_delivers_what_paho_delivers(broker):  # type: ignore[no-untyped-def]
    slow = _exchange(broker, fast=False)
    fast = _exchange(broker, fast=True)
    assert len(fast) == 353
    assert fast[0] == ("mix/retained", b"r", 1, True)
    assert fast == slow


def test_fast_reader_settles_qos1_publishes_as_paho_does(broker) -> None:  # type: ignore[no-untyped-def]
    """Acknowledgements take the fast path (paho's decoder never sees them), and every
    QoS 1 message still counts as published, beyond paho's in-flight window too."""
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from imu_har.runtime.fastrecv import FastReceiveClient

    client = FastReceiveClient(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_publishes = lambda batch: None
    slow: list[int] = []
    handle = client._packet_handle

    def paho_handles() -> Any:
        slow.append(client._in_packet["command"])
        return handle()

    client._packet_handle = paho_handles  # type: ignore[method-assign]
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        window = client._max_inflight_messages
        infos = [client.publish("fast/ack", b"%d" % i, qos=1) for i in range(10 * window)]
        for info in infos:
            info.wait_for_publish(10)
        assert all(info.is_published() for info in infos)
        assert client._inflight_messages == 0 and not client._out_messages
        assert 0x40 not in slow  # no PUBACK went through paho's own handler
        published: list[int] = []
        client.on_publish = lambda _c, _u, mid, _rc, _p: published.append(mid)
        info = client.publish("fast/ack", b"listened", qos=1)
        info.wait_for_publish(10)
        assert published == [info.mid] and 0x40 in slow  # a listener: paho's path, as before
    finally:
        client.disconnect()
        client.loop_stop()


def test_fast_reader_ignores_a_stray_puback_and_leaves_a_short_one_to_paho() -> None:
    """A PUBACK for a message id we are not waiting on (a broker's mistake, or one that
    was settled already) changes nothing, as in paho; one too short to carry a message
    id is paho's to refuse, as before."""
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from imu_har.runtime.fastrecv import FastReceiveClient

    client = FastReceiveClient(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    got: list[Any] = []
    client.on_publishes = got.extend
    slow: list[int] = []
    client._packet_handle = lambda: slow.append(client._in_packet["command"]) or 0  # type: ignore[method-assign]
    stray = bytes([0x40, 4, 0x03, 0xE7, 0x10, 0x00])  # mid 999, "no matching subscribers"
    client._rx += _packet("a", b"1") + stray + _packet("b", b"2")
    assert client._process(client.on_publishes) == 0
    assert [m.topic for m in got] == ["a", "b"] and not slow
    assert client._inflight_messages == 0 and not client._out_messages
    client._rx += bytes([0x40, 1, 0x00])  # no room for a message id
    client._process(client.on_publishes)
    assert slow == [0x40]


# -- publishing ------------------------------------------------------------------------


def test_the_in_flight_window_follows_the_brokers_receive_maximum(run_service) -> None:  # type: ignore[no-untyped-def]
    """paho keeps 20 QoS 1 publishes in flight whatever the broker allows; the runtime
    takes the CONNACK's Receive Maximum (the private broker's 1,000, or a broker's 50),
    and paho's 20 from a CONNACK without properties (MQTT 3.1.1)."""
    from imu_har.ops.broker import MosquittoBroker
    from imu_har.runtime.connection import follow_receive_maximum

    for extra, window in (("", 1000), ("max_inflight_messages 50\n", 50)):
        with MosquittoBroker(extra_config=extra) as broker:
            service = run_service(runtime_for(broker), Recording([("rt/fixed", 1)]))
            assert service.runtime.client._max_inflight_messages == window
            infos = [service.runtime.client.publish("rt/w", b"x", qos=1) for _ in range(300)]
            for info in infos:
                info.wait_for_publish(10)
            assert all(info.is_published() for info in infos)
            service.stop()
    client = runtime_for(broker).client
    assert follow_receive_maximum(client, None) == 20 == client._max_inflight_messages


def test_a_smaller_window_after_a_reconnect_holds_back_the_rest() -> None:
    """What was not acknowledged is sent again on CONNACK up to the new broker's window;
    the rest waits for acknowledgements, as paho does with its own window."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from imu_har.runtime.connection import follow_receive_maximum

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client._max_inflight_messages = 1000
    for i in range(5):  # not connected: kept to be sent again, state "publish"
        client.publish(f"w/{i}", b"x", qos=1)
    connack = Properties(PacketTypes.CONNACK)
    connack.ReceiveMaximum = 2
    assert follow_receive_maximum(client, connack) == 2
    states = [m.state for m in client._out_messages.values()]
    assert states == [mqtt.mqtt_ms_publish] * 2 + [mqtt.mqtt_ms_queued] * 3
