"""Small MQTT client helpers for tests, benchmarks, the dashboard and scripts.

:func:`connect` returns a connected paho client (v5, loop running);
:class:`Collector` gathers messages of a topic filter thread-safely and waits
for a count or a condition.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from imu_har.runtime.fastrecv import FastReceiveClient, PublishBatch
from imu_har.runtime.settings import MqttSettings

logger = logging.getLogger(__name__)


def connect(
    host: str = "127.0.0.1",
    port: int = 1883,
    client_id: str | None = None,
    timeout: float = 10.0,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    username: str | None = None,
    password: str | None = None,
    on_publishes: PublishBatch | None = None,
) -> mqtt.Client:
    """A connected client with its network loop running; raises if it cannot connect.

    With ``on_publishes``, plain publishes arrive there in batches instead of
    through ``on_message`` (:class:`~imu_har.runtime.fastrecv.FastReceiveClient`).
    """
    client = FastReceiveClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"tool-{uuid.uuid4().hex[:8]}",
        protocol=protocol,
    )
    client.on_publishes = on_publishes
    if username:
        client.username_pw_set(username, password)
    ready = threading.Event()
    client.on_connect = lambda *_: ready.set()
    client.connect(host, port, keepalive=30)
    client.loop_start()
    if not ready.wait(timeout):
        client.loop_stop()
        raise TimeoutError(f"could not connect to {host}:{port}")
    return client


def make_client(settings: MqttSettings, client_id: str, manual_ack: bool = False) -> mqtt.Client:
    """A paho v5 client (not connected) with the settings' credentials and TLS applied.

    It is a :class:`~imu_har.runtime.fastrecv.FastReceiveClient`: it acts like paho's own
    until its ``on_publishes`` is set.
    """
    client = FastReceiveClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
    if settings.mqtt_tls:
        client.tls_set(
            ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
            certfile=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
            keyfile=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
        )
        client.tls_insecure_set(settings.mqtt_tls_insecure)
    return client


def connect_settings(settings: MqttSettings, client_id: str | None = None) -> mqtt.Client:
    """:func:`connect` with a service's broker settings."""
    return connect(
        settings.mqtt_host,
        settings.mqtt_port,
        client_id,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
    )


class Collector:
    """Collect every message matching ``topic_filter`` on ``client``."""

    def __init__(self, client: mqtt.Client, topic_filter: str, qos: int = 1) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._cond = threading.Condition()
        self._filter = topic_filter
        client.message_callback_add(topic_filter, self._on_message)
        done = threading.Event()
        previous = client.on_subscribe
        client.on_subscribe = lambda *_: done.set()
        client.subscribe(topic_filter, qos)
        done.wait(5.0)
        client.on_subscribe = previous

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait_for(
        self,
        count: int = 1,
        timeout: float = 10.0,
        predicate: Callable[[list[mqtt.MQTTMessage]], bool] | None = None,
    ) -> list[mqtt.MQTTMessage]:
        """Wait until ``count`` messages (or ``predicate``) hold; return a copy either way."""
        check = predicate or (lambda msgs: len(msgs) >= count)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self.messages)

    def clear(self) -> None:
        """Forget what was collected so far."""
        with self._cond:
            self.messages.clear()


def disable_nagle(client: mqtt.Client) -> None:
    """TCP_NODELAY: small messages leave at once instead of waiting for ACKs (~40 ms)."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # not a TCP socket (e.g. a Unix socket)
            logger.debug("TCP_NODELAY not set: %s", exc)
