"""The private-broker harness keeps persistent sessions across a restart."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imu_har.ops.broker import MosquittoBroker
from imu_har.runtime.client import connect

pytestmark = pytest.mark.broker


def persistent_client(port: int, got: list[bytes], ready: threading.Event) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="persistent-1", protocol=MQTTProtocolVersion.MQTTv5
    )
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.on_connect = lambda c, *_: (c.subscribe("t/q", 1), ready.set())
    client.on_message = lambda _c, _u, msg: got.append(msg.payload)
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    return client


def test_queued_qos1_messages_survive_a_broker_restart() -> None:
    with MosquittoBroker() as broker:
        got: list[bytes] = []
        ready = threading.Event()
        subscriber = persistent_client(broker.port, got, ready)
        assert ready.wait(10)
        subscriber.disconnect()
        subscriber.loop_stop()
        publisher = connect(broker.host, broker.port)
        publisher.publish("t/q", b"kept", qos=1).wait_for_publish(5)
        publisher.disconnect()
        broker.restart()
        ready.clear()
        subscriber = persistent_client(broker.port, got, ready)
        assert ready.wait(10)
        deadline = threading.Event()
        for _ in range(50):
            if got:
                break
            deadline.wait(0.1)
        subscriber.disconnect()
        subscriber.loop_stop()
        assert got == [b"kept"]
