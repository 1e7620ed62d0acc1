"""The dashboard's single MQTT connection (paho, v5) feeding a :class:`Store`.

Created once per dashboard process (the page caches it with
``st.cache_resource``). paho's network thread only calls ``Store.ingest`` and
updates connection flags; it never touches Streamlit. Reconnection is paho's
own (``connect_async`` + ``loop_start`` retries, backoff 1-8 s).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imu_har.protocol import topics
from imu_har.protocol.commands import CommandReply
from imu_har.protocol.messages import Message
from imu_har.runtime.client import make_client
from imu_har.runtime.settings import MqttSettings
from services.dashboard.store import Limits, Reply, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkState:
    """What the page shows about the broker connection."""

    host: str
    port: int
    connected: bool
    since: float  # time of the last connect or disconnect
    attempts: int  # connection attempts since the last success
    disconnects: int
    last_error: str | None


class Connection:
    """One paho client subscribed to ``<root>/#``, feeding ``store``."""

    def __init__(self, settings: MqttSettings, limits: Limits | None = None) -> None:
        self.settings = settings
        self.root = settings.topic_root
        # One topic level: the reply topic is <root>/dashboard/<client id>/reply.
        self.client_id = topics.validate_client_id(
            settings.client_id or f"dashboard-{uuid.uuid4().hex[:10]}"
        )
        self.reply_topic = topics.DASHBOARD_REPLY.format(self.root, client=self.client_id)
        self.store = Store(self.root, limits, client_id=self.client_id)
        self._lock = threading.Lock()
        self._connected = False
        self._since = time.time()
        self._attempts = 1
        self._disconnects = 0
        self._last_error: str | None = None
        self.subscribed = threading.Event()  # set once the broker acknowledged <root>/#
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = make_client(self.settings, self.client_id)
        client.reconnect_delay_set(min_delay=1, max_delay=8)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: self.subscribed.set()
        return client

    def start(self) -> Connection:
        """Connect in the background; paho keeps retrying until :meth:`close`."""
        self.client.connect_async(
            self.settings.mqtt_host, self.settings.mqtt_port, self.settings.mqtt_keepalive
        )
        self.client.loop_start()
        return self

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (network thread) ---------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._failed(f"broker refused the connection: {reason}")
            return
        client.subscribe(topics.everything(self.root), qos=1)
        with self._lock:
            self._connected, self._since, self._attempts = True, time.time(), 0
        logger.info(
            "dashboard connected to %s:%s", self.settings.mqtt_host, self.settings.mqtt_port
        )

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self._failed("cannot reach the broker")

    def _failed(self, text: str) -> None:
        with self._lock:
            self._attempts += 1
            self._last_error = text

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.subscribed.clear()
        with self._lock:
            if self._connected:
                self._disconnects += 1
            self._connected, self._since = False, time.time()
            self._last_error = f"connection lost: {reason}"
        logger.warning("dashboard lost the broker (%s); paho reconnects", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        correlation = getattr(props, "CorrelationData", None) if props else None
        self.store.ingest(msg.topic, bytes(msg.payload), correlation=correlation)

    # -- page side (script thread) -----------------------------------------------------
    def state(self) -> LinkState:
        """A copy of the connection state."""
        with self._lock:
            return LinkState(
                self.settings.mqtt_host,
                self.settings.mqtt_port,
                self._connected,
                self._since,
                self._attempts,
                self._disconnects,
                self._last_error,
            )

    def send(self, template: topics.TopicTemplate, command: Message) -> str:
        """Publish a command with a v5 response topic; returns its correlation id."""
        correlation = uuid.uuid4().hex
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = correlation.encode()
        self.client.publish(
            template.format(self.root), command.to_payload(), qos=1, properties=props
        )
        return correlation

    def request(
        self, template: topics.TopicTemplate, command: Message, timeout: float = 3.0
    ) -> CommandReply | None:
        """Send ``command`` and wait up to ``timeout`` for its reply (None if none came)."""
        if not self.state().connected:
            return None
        correlation = self.send(template, command)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply: Reply | None = self.store.reply_for(correlation)
            if reply is not None:
                return reply.reply
            time.sleep(0.05)
        return None
