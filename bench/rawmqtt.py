"""Cheap MQTT load generation and reception for benchmarks.

On a 2-core machine the benchmark's own publisher and receiver compete with
the service under test. :class:`RawPublisher` speaks just enough MQTT v5 over
a plain socket (CONNECT, then QoS 0 PUBLISH packets written many at a time),
and :func:`fast_receiver` gives a paho client that hands received messages
over in batches (:class:`imu_har.runtime.fastrecv.FastReceiveClient`), so both cost a
few microseconds per message instead of tens.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt

from imu_har.runtime.batchpub import _varint, publish_packet
from imu_har.runtime.client import connect
from imu_har.runtime.fastrecv import RawPublish

__all__ = ["RawPublisher", "fast_receiver", "publish_packet"]


class RawPublisher:
    """A QoS 0 publisher on a plain socket; :meth:`send` writes pre-built packets."""

    def __init__(self, host: str, port: int, client_id: str | None = None) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        name = (client_id or f"rawpub-{uuid.uuid4().hex[:8]}").encode()
        # protocol name, level 5, clean start, keepalive 0 (no pings needed), no properties
        body = b"\x00\x04MQTT\x05\x02\x00\x00\x00" + len(name).to_bytes(2, "big") + name
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        head = self._read(2)
        connack = self._read(head[1])
        if head[0] != 0x20 or connack[1] != 0:
            raise ConnectionError(f"broker refused the connection: {connack!r}")

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def send(self, packets: bytes) -> None:
        """Write packets (as built by :func:`publish_packet`)."""
        self.sock.sendall(packets)

    def close(self) -> None:
        """Disconnect cleanly (DISCONNECT, normal)."""
        try:
            self.sock.sendall(b"\xe0\x00")
        finally:
            self.sock.close()


def fast_receiver(
    host: str, port: int, on_batch: Callable[[list[RawPublish]], None]
) -> mqtt.Client:
    """A connected v5 client (loop running, Nagle off) whose plain publishes go to ``on_batch``."""
    client = connect(host, port, on_publishes=on_batch)
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client
