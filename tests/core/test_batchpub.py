"""Publishing many messages at once (QoS 0 and QoS 1) against paho's own publish and a broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from imu_har.runtime.batchpub import publish_acked, publish_packet
from imu_har.runtime.fastrecv import FastReceiveClient


def _client() -> FastReceiveClient:
    client = FastReceiveClient(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_publishes = lambda batch: None
    return client


@pytest.mark.parametrize(
    ("qos", "retain", "topic", "payload"),
    [
        (0, False, "har/a/prediction", b"{}"),
        (1, True, "har/ü/workout", b"x" * 300),
        (1, False, "t", b""),
    ],
)
def test_packets_are_the_bytes_paho_publish_sends(
    qos: int, retain: bool, topic: str, payload: bytes
) -> None:
    client = _client()
    sent: list[bytes] = []
    client._sock = object()  # type: ignore[assignment]  # "connected": paho builds the packet
    client._packet_queue = lambda _c, packet, *_a, **_k: sent.append(bytes(packet)) or 0  # type: ignore[method-assign]
    client._send_publish(4242, topic.encode(), payload, qos, retain)
    client._sock = None  # nothing to close
    assert publish_packet(topic, payload, qos, 4242, retain) == sent[0]


@contextmanager
def _connected(broker: Any) -> Iterator[FastReceiveClient]:
    """A publishing client, connected (CONNACK in), its network loop running."""
    client = _client()
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(10)
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


class Subscriber:
    """A plain paho client that keeps what it receives on one filter."""

    def __init__(self, broker: Any, topic_filter: str) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(topic_filter, qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((message.topic, message.payload, bool(message.retain)))

    def wait_for(self, count: int) -> list[tuple[str, bytes, bool]]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= count:
                    break
            time.sleep(0.02)
        with self.lock:
            return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_acked_batch_keeps_the_window_order_and_retain_and_settles(broker) -> None:  # type: ignore[no-untyped-def]
    """Ten windows' worth in one call: one window goes out, the rest waits in paho's
    store (its network loop stopped, nothing is acknowledged meanwhile); then every
    message arrives once, in order, and all settle. A batch of retained ones is kept."""
    live = Subscriber(broker, "acked/#")
    try:
        with _connected(broker) as client:
            client.loop_stop()  # no acknowledgement is read until the loop runs again
            window = client._max_inflight_messages
            count = 10 * window + 3
            messages = [(f"acked/{i % 5}", b"%d" % i, i % 2 == 0) for i in range(count)]
            infos = publish_acked(client, messages)
            states = [m.state for m in client._out_messages.values()]
            assert client._inflight_messages == window
            assert states.count(mqtt.mqtt_ms_wait_for_puback) == window
            assert states.count(mqtt.mqtt_ms_queued) == count - window
            client.loop_start()
            for info in infos:
                info.wait_for_publish(10)
            assert all(info.is_published() for info in infos)
            assert client._inflight_messages == 0 and not client._out_messages
            assert [payload for _, payload, _ in live.wait_for(count)] == [m[1] for m in messages]
            last = [(f"acked/{k}", b"last %d" % k, True) for k in range(5)]  # within the window
            for info in publish_acked(client, last):
                info.wait_for_publish(10)
            late = Subscriber(broker, "acked/#")  # the retained message of each topic
            kept = {topic: payload for topic, payload, retained in late.wait_for(5) if retained}
            assert kept == {t: p for t, p, _ in last}
            late.close()
    finally:
        live.close()


def test_acked_batch_refuses_a_wildcard_before_sending_anything(broker) -> None:  # type: ignore[no-untyped-def]
    with _connected(broker) as client:
        with pytest.raises(ValueError):
            publish_acked(client, [("ok/a", b"1", False), ("bad/+", b"2", False)])
        assert not client._out_messages and client._inflight_messages == 0


def test_acked_batch_without_a_connection_is_kept_by_paho_for_later() -> None:
    client = _client()
    infos = publish_acked(client, [("a/b", b"1", False), ("a/c", b"2", True)])
    assert [i.rc for i in infos] == [mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN] * 2
    assert [m.state for m in client._out_messages.values()] == [mqtt.mqtt_ms_publish] * 2
