"""One service's MQTT connection (paho-mqtt 2.x, MQTT v5): everything but the main loop.

:class:`ServiceConnection` owns the client: Last Will and retained online/offline
status, subscriptions renewed in ``on_connect``, automatic reconnect with
backoff, counters published on the status topic, replies to commands. Paho's
callbacks only enqueue into the :class:`Inbox`; the main loop
(:mod:`imu_har.runtime.service`) takes the messages from there.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imu_har import __version__
from imu_har.protocol import topics
from imu_har.protocol.messages import Message, ServiceStatus
from imu_har.runtime.batchpub import publish_acked, publish_batch
from imu_har.runtime.client import disable_nagle, make_client
from imu_har.runtime.counters import CounterSet
from imu_har.runtime.fastrecv import FastReceiveClient, RawPublish
from imu_har.runtime.handler import Handler, reply_target
from imu_har.runtime.inbox import Inbound, Inbox
from imu_har.runtime.settings import MqttSettings
from imu_har.runtime.subscriptions import Acknowledgements

logger = logging.getLogger(__name__)
MAX_INFLIGHT = 1000  # unacknowledged QoS 1 publishes at most, whatever the broker allows


def follow_receive_maximum(client: mqtt.Client, properties: Any) -> int:
    """Keep as many QoS 1 publishes in flight as the broker's CONNACK allows (MQTT v5
    Receive Maximum, 65,535 when absent), at most :data:`MAX_INFLIGHT`; returns the window.
    paho keeps 20 whatever the broker says, so a burst of more events (a batch of the
    workout's, the sets a shutdown closes) waited for acknowledgements, each then sent
    alone. At 1,000 wearables it changed nothing measurable (2026-12-05)."""
    allowed = getattr(properties, "ReceiveMaximum", 65_535) if properties is not None else 20
    window = max(1, min(int(allowed), MAX_INFLIGHT))
    # paho's setter refuses while connected (its doubt is a change to or from 0, never
    # made here). Called from on_connect, before paho sends again what was not
    # acknowledged: it sends the messages marked "publish" up to the first "queued" one,
    # so those beyond a smaller window than the last broker's are marked queued.
    with client._out_message_mutex:
        client._max_inflight_messages = window
        again = [m for m in client._out_messages.values() if m.state == mqtt.mqtt_ms_publish]
        for message in again[window:]:
            message.state = mqtt.mqtt_ms_queued
    return window


class ServiceConnection:
    """One service's MQTT client: callbacks, subscriptions, publishing, counters and status.

    :class:`imu_har.runtime.service.ServiceRuntime` adds the main loop that
    serves a :class:`Handler`.
    """

    def __init__(
        self,
        name: str,
        settings: MqttSettings,
        *,
        manual_ack: bool = False,
        clean_start: bool = True,
        session_expiry: int | None = None,
        max_batch: int = 1,
        batch_wait: float = 0.0,
        tick_interval: float = 0.25,
        queue_limit: int | None = 100_000,
    ) -> None:
        self.name = name
        self.settings = settings
        self.root = settings.topic_root
        self.client_id = settings.client_id or f"{name}-{socket.gethostname()}-{os.getpid()}"
        self.counters = CounterSet()
        self.connected = threading.Event()
        self.ready = threading.Event()  # connected and subscriptions acknowledged
        self.stopping = threading.Event()
        self._signalled = False  # set by SIGTERM/SIGINT; see _on_signal
        self.started_at = time.time()
        self.tick_interval = tick_interval
        self.inbox = Inbox(max_batch, batch_wait, queue_limit)
        self._errors: deque[str] = deque(maxlen=10)
        self._handler: Handler | None = None
        self._last_status = 0.0
        self._session_expiry = session_expiry
        self._clean_start = clean_start
        self.acks = Acknowledgements(name, self.ready)
        self.status_topic = topics.SERVICE_STATUS.format(self.root, service=name)
        self.client = self._make_client(manual_ack)

    # -- connection -----------------------------------------------------------------
    def _make_client(self, manual_ack: bool) -> mqtt.Client:
        client = make_client(self.settings, self.client_id, manual_ack)
        client.will_set(self.status_topic, self._status("offline").to_payload(), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=16)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if self.settings.mqtt_fast_receive and isinstance(client, FastReceiveClient):
            client.on_publishes = self._on_publishes
        client.on_subscribe = self.acks.on_ack
        client.on_unsubscribe = self.acks.on_ack
        return client

    def start(self) -> None:
        """Connect in the background; reconnects happen automatically."""
        props = None
        if self._session_expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry
        self.client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            self.settings.mqtt_keepalive,
            clean_start=self._clean_start,
            properties=props,
        )
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.error(f"broker refused connection: {reason}")
            return
        follow_receive_maximum(client, props)
        logger.info(
            "%s connected to %s:%s", self.name, self.settings.mqtt_host, self.settings.mqtt_port
        )
        if self.settings.mqtt_nodelay:
            disable_nagle(client)
        subs = self._handler.subscriptions() if self._handler else []
        if subs:
            self.acks.request(lambda: client.subscribe(subs), on_connect=True)
        else:
            self.ready.set()
        self.connected.set()
        self.publish_status(force=True)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        self.ready.clear()
        if not self.stopping.is_set():
            self.counters.inc("disconnects")
            logger.warning("%s lost the broker (%s); reconnecting", self.name, reason)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        def ack(mid: int = msg.mid, qos: int = msg.qos) -> None:
            client.ack(mid, qos)

        payload = msg.payload if isinstance(msg.payload, bytes) else bytes(msg.payload)
        accepted = self.inbox.put(
            Inbound(
                msg.topic,
                payload,
                msg.qos,
                bool(msg.retain),
                getattr(msg, "properties", None),
                time.time(),
                ack,
            )
        )
        if not accepted:
            self.reject("queue_full", f"{msg.topic}: inbox holds {self.inbox.limit} messages")

    def _on_publishes(self, batch: list[RawPublish]) -> None:
        now = time.time()
        ack = cast(Callable[[int, int], None], self.client.ack)
        inbound = [
            Inbound(m.topic, m.payload, m.qos, m.retain, None, now, partial(ack, m.mid, 1))
            if m.qos
            else Inbound(m.topic, m.payload, 0, m.retain, None, now)
            for m in batch
        ]
        refused = self.inbox.put_many(inbound)
        for message in refused:
            self.reject("queue_full", f"{message.topic}: inbox holds {self.inbox.limit} messages")

    def subscribe(
        self,
        subs: list[tuple[str, Any]],
        done: Callable[[list[Any]], None] | None = None,
    ) -> bool:
        """Subscribe now (any thread); ``done(reason_codes)`` runs on paho's thread on SUBACK.

        Returns False when not connected: the handler's :meth:`Handler.subscriptions`
        must then include ``subs`` so the next connect subscribes them.
        """
        return self.acks.request(lambda: self.client.subscribe(subs), done)

    def unsubscribe(
        self, topic_filters: list[str], done: Callable[[list[Any]], None] | None = None
    ) -> bool:
        """Unsubscribe now (any thread); ``done(reason_codes)`` runs on UNSUBACK."""
        return self.acks.request(lambda: self.client.unsubscribe(topic_filters), done)

    # -- publishing ------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> mqtt.MQTTMessageInfo:
        """Publish (thread-safe); counted as ``messages_out``."""
        self.counters.messages_out += 1
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish ``(topic, payload)`` pairs at QoS 0 in one socket write (high-rate output)."""
        self.counters.messages_out += len(messages)
        publish_batch(self.client, messages)

    def publish_acked(self, messages: Sequence[tuple[str, bytes, bool]]) -> None:
        """Publish ``(topic, payload, retain)`` at QoS 1 with one socket write where paho's
        in-flight window allows (events); counted as ``messages_out``."""
        self.counters.messages_out += len(messages)
        publish_acked(self.client, messages)

    def publish_message(
        self, message: Message, qos: int = 0, retain: bool = False, **topic_values: str
    ) -> mqtt.MQTTMessageInfo:
        """Publish a JSON message on its own topic template."""
        assert message.TOPIC is not None, f"{type(message).__name__} has no topic"
        topic = message.TOPIC.format(self.root, **topic_values)
        return self.publish(topic, message.to_payload(), qos=qos, retain=retain)

    def reply(self, request: Inbound, payload: bytes, fallback_topic: str) -> None:
        """Answer a command: v5 response topic + correlation data, else ``fallback_topic``.

        A response topic that cannot be published to (see :func:`reply_target`) is
        counted as ``bad_response_topic`` and the reply goes to the fallback topic;
        a reply never raises into the handler.
        """
        topic, props, problem = reply_target(request, fallback_topic)
        if problem:
            self.reject("bad_response_topic", problem)
        try:
            self.publish(topic, payload, qos=1, properties=props)
        except (ValueError, TypeError) as exc:  # paho refused it: count, never raise
            self.reject("reply_failed", f"reply to {topic!r}: {exc}")

    def reject(self, reason: str, detail: str) -> None:
        """Count a rejected input under ``reason`` and log it (rate-limited per reason)."""
        if self.counters.reject(reason):
            logger.warning("%s rejected input (%s): %s", self.name, reason, detail)

    def error(self, text: str) -> None:
        """Record an operational error: logged and shown in the status."""
        logger.error("%s: %s", self.name, text)
        self._errors.append(f"{time.strftime('%H:%M:%S')} {text}")

    def _status(self, state: str) -> ServiceStatus:
        details = self._handler.details() if (self._handler and state == "online") else {}
        return ServiceStatus(
            service=self.name,
            instance=self.client_id,
            state=state,
            version=__version__,
            started_at=self.started_at,
            counters=self.counters.snapshot(self.inbox.qsize()),
            errors=list(self._errors),
            details=details,
        )

    def publish_status(self, force: bool = False) -> None:
        """Publish the retained status when due (every ``status_interval``) or forced."""
        now = time.monotonic()
        if force or now - self._last_status >= self.settings.status_interval:
            self._last_status = now
            self.client.publish(
                self.status_topic, self._status("online").to_payload(), qos=1, retain=True
            )
