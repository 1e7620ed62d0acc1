"""Publish a batch of QoS 0 messages with one socket write instead of one per message.

paho-mqtt's ``publish`` from a thread other than its network loop queues the
packet, wakes the loop through a socket pair and lets it write the packet:
three system calls and a thread hand-off per message, which at 20,000
predictions per second costs more than the inference. :func:`publish_batch`
encodes the MQTT v5 PUBLISH packets itself (QoS 0, no properties: the simplest
packet there is) and queues the concatenation as one outgoing buffer through
paho's own queue, so the bytes on the wire are exactly what ``publish`` would
send. It relies on paho 2.x internals (``_packet_queue``); when they are
missing or the client is not connected it falls back to ``publish`` per message.
"""

from __future__ import annotations

from collections.abc import Sequence

import paho.mqtt.client as mqtt

_PUBLISH_QOS0 = b"\x30"
_OPAQUE = 0  # not PUBLISH/DISCONNECT: paho's writer sends the bytes and nothing else


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def publish_packet(topic: str, payload: bytes) -> bytes:
    """One MQTT v5 PUBLISH packet: QoS 0, not retained, no properties."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + b"\x00"  # property length 0
    return _PUBLISH_QOS0 + _varint(len(body) + len(payload)) + body + payload


def publish_batch(client: mqtt.Client, messages: Sequence[tuple[str, bytes]]) -> None:
    """Publish ``(topic, payload)`` pairs at QoS 0, in order, as one socket write."""
    queue = getattr(client, "_packet_queue", None)
    if queue is None or len(messages) < 2 or not client.is_connected():
        for topic, payload in messages:
            client.publish(topic, payload)
        return
    queue(_OPAQUE, b"".join([publish_packet(t, p) for t, p in messages]), 0, 0)
