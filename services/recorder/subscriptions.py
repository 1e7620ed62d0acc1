"""The recorder's raw-frame subscriptions: ``<root>/<device>/imu`` only while recording it.

A recorder that subscribed to every device's frames would spend a CPU core on
frames it throws away. :class:`ImuSubscriptions` keeps one QoS 1 subscription
per device with an open (or starting) session: it is subscribed when a session
starts, listed again on every (re)connect, and unsubscribed when the session
ends. Paho reports SUBACK/UNSUBACK on its own thread; the callbacks here only
put a small event into the runtime inbox under :data:`EVENT_TOPIC` (a topic no
MQTT message can carry: it contains U+0000), which the service thread hands
back to :meth:`ImuSubscriptions.event`. Everything else runs on the service
thread.

Leftover subscriptions (a stop whose UNSUBSCRIBE was lost to a crash, or the
``<root>/+/imu`` wildcard of older versions kept in the broker's persistent
session) heal themselves: the wildcard is unsubscribed on every connect, and a
frame of a device that is not recorded unsubscribes its topic, once per
connection.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from imu_har.protocol import topics
from imu_har.runtime.inbox import Inbound
from imu_har.runtime.service import ServiceRuntime

logger = logging.getLogger(__name__)

EVENT_TOPIC = "\x00recorder/subscription"  # U+0000 is forbidden in MQTT topics
MAX_HEALED = 10_000  # devices remembered as already unsubscribed in one connection


def refusal(codes: list[Any]) -> str | None:
    """Why a SUBACK refused a filter (reason code >= 0x80), or None if all were granted."""
    for code in codes:
        value = getattr(code, "value", code)
        if isinstance(value, int) and value >= 0x80:
            return f"{code} (0x{value:02x})"
    return None


class ImuSubscriptions:
    """Which devices' raw frames the recorder receives, kept in step with the broker."""

    def __init__(self, runtime: ServiceRuntime, root: str) -> None:
        self.runtime = runtime
        self.root = root
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()  # guards what paho's thread reads: wanted, generation
        self._wanted: frozenset[str] = frozenset()
        self._generation = 0  # connects so far (paho's thread)
        self._seen_generation = 0
        self._queued: set[str] = set()  # filters to unsubscribe
        self._inflight: dict[int, list[str]] = {}  # UNSUBSCRIBE token -> its filters
        self._healed: set[str] = set()  # devices unsubscribed in this connection
        self._tokens = itertools.count(1)

    def topic(self, device: str) -> str:
        """The raw-frame topic of ``device``."""
        return topics.IMU.format(self.root, device=device)

    @property
    def devices(self) -> frozenset[str]:
        """Devices whose frames we subscribe to (any thread)."""
        with self._lock:
            return self._wanted

    @property
    def connection(self) -> int:
        """How many times we connected so far (changes on every reconnect)."""
        with self._lock:
            return self._generation

    def connect_topics(self) -> list[tuple[str, int]]:
        """The imu topics to subscribe on a (re)connect; runs on paho's thread."""
        with self._lock:
            self._generation += 1
            return [(self.topic(d), 1) for d in sorted(self._wanted)]

    def next_token(self) -> int:
        """A fresh token to match a SUBACK event with its request."""
        return next(self._tokens)

    def subscribe(self, device: str, token: int = 0) -> bool:
        """Want ``device``'s frames and subscribe now; False when offline (the connect will).

        The SUBACK comes back through the inbox as an event carrying ``token``.
        """
        with self._lock:
            self._wanted = self._wanted | {device}
        self._queued.discard(self.topic(device))
        self._healed.discard(device)
        topic = self.topic(device)
        return self.runtime.subscribe([(topic, 1)], self._done("sub", token, [topic]))

    def sync(self, devices: set[str]) -> None:
        """Want exactly ``devices``: subscribe the new ones, queue the others' unsubscribe."""
        with self._lock:
            old = self._wanted
            self._wanted = frozenset(devices)
        for device in old - devices:
            self._queued.add(self.topic(device))
            self._healed.add(device)
        for device in devices - old:
            self.subscribe(device)

    def stray(self, device: str) -> None:
        """A frame of a device we do not record arrived: drop its leftover subscription once.

        At most :data:`MAX_HEALED` topics wait to be unsubscribed (the wildcard of an
        older version brings every device's frames until the next connect drops it);
        a stray over that is skipped now and healed when its next frame comes.
        """
        if device in self.devices or device in self._healed or len(self._queued) >= MAX_HEALED:
            return
        if len(self._healed) >= MAX_HEALED:
            self._healed.clear()
        self._healed.add(device)
        self._queued.add(self.topic(device))
        self.counts["stray_unsubscribes"] += 1

    def poll(self) -> None:
        """Send queued unsubscribes when connected (after a reconnect: the lost ones again)."""
        with self._lock:
            generation, wanted = self._generation, self._wanted
        reconnected = generation != self._seen_generation
        if reconnected:
            self._seen_generation = generation
            for filters in self._inflight.values():  # their UNSUBACK will not come
                self._queued.update(filters)
            self._inflight.clear()
            self._healed.clear()
            self._queued.add(topics.IMU.subscription(self.root))  # an older version's wildcard
        if self._queued:
            self._queued -= {self.topic(d) for d in wanted}
        if self._queued and self.runtime.connected.is_set():
            token, filters = self.next_token(), sorted(self._queued)
            if self.runtime.unsubscribe(filters, self._done("unsub", token, filters)):
                self._inflight[token] = filters
                self._queued.clear()
                self.counts["unsubscribes"] += len(filters)

    def event(self, payload: bytes) -> tuple[str, int, str | None]:
        """Decode a SUBACK/UNSUBACK event: ``(kind, token, refusal or None)``."""
        data = json.loads(payload)
        kind, token = str(data["kind"]), int(data["token"])
        if kind == "unsub":
            self._inflight.pop(token, None)
            return kind, token, None
        refused = data.get("refused")
        if refused and token == 0:  # a session subscribed without a waiting command
            self.runtime.error(f"the broker refused {', '.join(data['filters'])}: {refused}")
        return kind, token, refused

    @property
    def unsubscribing(self) -> int:
        """Filters queued or waiting for their UNSUBACK."""
        return len(self._queued) + sum(len(f) for f in self._inflight.values())

    def _done(self, kind: str, token: int, filters: list[str]) -> Callable[[list[Any]], None]:
        """The SUBACK/UNSUBACK callback: runs on paho's thread, only enqueues an event."""
        inbox = self.runtime.inbox

        def done(codes: list[Any]) -> None:
            event = {"kind": kind, "token": token, "refused": refusal(codes), "filters": filters}
            inbox.put(Inbound(EVENT_TOPIC, json.dumps(event).encode()))

        return done
