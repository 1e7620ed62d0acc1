"""A paho client that reads the socket in large chunks and hands PUBLISHes over in batches.

Paho 2.x reads one packet at a time: a ``select``, then ``recv(1)`` for the
command byte, ``recv(1)`` per remaining-length byte and ``recv(n)`` for the
body, then decodes the v5 properties, builds an ``MQTTMessage``, matches it
against the per-topic callbacks and calls ``on_message``. At tens of thousands
of small messages per second those 30–40 µs per message cost more than the
services' own work (windowing, inference, writing).

:class:`FastReceiveClient` overrides the read step (``_packet_read``, a paho
2.x internal): it reads up to :data:`READ_SIZE` bytes at once, cuts every
complete packet out of the buffer, and hands plain QoS 0/1 PUBLISH packets
(no v5 properties, a topic name rather than an alias) to :attr:`on_publishes`
as one list per read. A PUBACK is settled here too (the message counts as
published, the next queued one goes out) unless ``on_publish`` is set, when
its reason code and properties have a listener. Every other packet (CONNACK,
SUBACK, PINGRESP, a PUBLISH with properties such as a command's response
topic, QoS 2) goes through paho's own handler unchanged, in order: a pending
batch is delivered before it. QoS 1 messages are acknowledged as paho would
(after delivery, or by the application under ``manual_ack``).

The bytes on the wire are unchanged; only the receiving process does less.
Tests run the same traffic through both paths and compare what arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket

__all__ = ["READ_SIZE", "FastReceiveClient", "RawPublish"]
logger = logging.getLogger(__name__)

READ_SIZE = 256 * 1024  # bytes per recv: hundreds of small messages per system call
_PUBLISH = 0x30
_PUBACK = 0x40


class RawPublish(NamedTuple):
    """A received PUBLISH without properties."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


PublishBatch = Callable[[list[RawPublish]], None]


def _fresh_in_packet() -> Any:  # paho's private _InPacket TypedDict
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }


class FastReceiveClient(mqtt.Client):
    """A paho client whose plain PUBLISHes go to :attr:`on_publishes` in batches.

    With :attr:`on_publishes` unset it behaves exactly like ``mqtt.Client``
    (every packet takes paho's own path, ``on_message`` included).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_publishes: PublishBatch | None = None
        self._rx = bytearray()
        self._rx_sock: object | None = None
        self._v5 = self._protocol == MQTTProtocolVersion.MQTTv5

    def _packet_read(self) -> MQTTErrorCode:
        deliver = self.on_publishes
        if deliver is None:
            return super()._packet_read()
        sock = self._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if sock is not self._rx_sock:  # a new connection: leftovers belong to the old one
            self._rx.clear()
            self._rx_sock = sock
        try:
            data = self._sock_recv(READ_SIZE)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:
            logger.debug("receive failed: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        self._rx += data
        return self._process(deliver)

    def _process(self, deliver: PublishBatch) -> MQTTErrorCode:
        """Handle every complete packet in the buffer; keep a partial one for the next read."""
        buf = self._rx
        size, pos = len(buf), 0
        batch: list[RawPublish] = []
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while size - pos >= 2:
            command, body, end = buf[pos], pos + 1, 0
            length, shift = 0, 0
            while body < size:
                byte = buf[body]
                length |= (byte & 0x7F) << shift
                body += 1
                if byte < 0x80:
                    end = body + length
                    break
                shift += 7
                if shift > 21:  # more than 4 length bytes: not MQTT
                    del buf[:]
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
            if not end or end > size:
                break  # incomplete: wait for more bytes
            message = None
            if command & 0xF0 == _PUBLISH:
                message = self._plain_publish(command, buf, body, end)
            elif command == _PUBACK and self._plain_puback(buf, body, end):
                pos = end
                continue
            if message is not None:
                batch.append(message)
            else:
                if batch:
                    self._deliver(deliver, batch)
                    batch = []
                rc = self._paho_handle(command, buf, pos + 1, body, end)
            pos = end
            if rc:
                break
        del buf[:pos]
        if batch:
            self._deliver(deliver, batch)
        return rc

    def _plain_publish(self, command: int, buf: bytearray, at: int, end: int) -> RawPublish | None:
        """The PUBLISH at ``buf[at:end]`` if it needs nothing but topic and payload, else None."""
        qos = (command >> 1) & 3
        if qos == 2 or end - at < 3:
            return None
        topic_end = at + 2 + (buf[at] << 8 | buf[at + 1])
        if topic_end == at + 2 or topic_end > end:
            return None  # a topic alias or a malformed packet: paho decides
        mid = 0
        body = topic_end
        if qos:
            if body + 2 > end:
                return None
            mid = buf[body] << 8 | buf[body + 1]
            body += 2
        if self._v5:
            if body >= end or buf[body] != 0:
                return None  # has properties (response topic, user properties...)
            body += 1
        try:
            topic = buf[at + 2 : topic_end].decode("utf-8")
        except UnicodeDecodeError:
            return None
        return RawPublish(topic, bytes(buf[body:end]), qos, bool(command & 1), mid)

    def _plain_puback(self, buf: bytearray, at: int, end: int) -> bool:
        """Settle the PUBACK at ``buf[at:end]`` as paho's ``_handle_pubackcomp`` does when
        nobody listens to ``on_publish`` (then its reason code and properties reach no
        one: the message counts as published whatever they say); False leaves it to paho.
        Paho's path decodes a reason code and a properties object for every
        acknowledgement: with about 500 QoS 1 events a second the workout service's network
        thread went from 10-11 % of a core to 7.7 % without it (2026-12-05)."""
        if end - at < 2 or self.on_publish is not None:
            return False
        mid = buf[at] << 8 | buf[at + 1]
        with self._out_message_mutex:
            message = self._out_messages.pop(mid, None)
            if message is None:  # not ours (any more): paho ignores it too
                return True
            message.info._set_as_published()
            if message.qos > 0:
                self._inflight_messages -= 1
                if self._max_inflight_messages > 0:
                    # the next queued message goes out; a failed send is a lost connection,
                    # which the loop finds on its next read or write, as after paho's path
                    self._update_inflight()
        return True

    def _deliver(self, deliver: PublishBatch, batch: list[RawPublish]) -> None:
        try:
            deliver(batch)
        except Exception:  # the application's bug must not break the connection
            logger.exception("on_publishes failed")
        if not self._manual_ack:
            for message in batch:
                if message.qos:
                    self._send_puback(message.mid)

    def _paho_handle(
        self, command: int, buf: bytearray, count_at: int, body: int, end: int
    ) -> MQTTErrorCode:
        """Let paho handle the packet ``buf[body:end]`` exactly as its own reader would."""
        packet = _fresh_in_packet()
        packet["command"] = command
        packet["have_remaining"] = 1
        packet["remaining_count"] = list(buf[count_at:body])
        packet["remaining_length"] = end - body
        packet["packet"] = bytearray(buf[body:end])
        self._in_packet = packet
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            logger.debug("malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = _fresh_in_packet()
        return rc
