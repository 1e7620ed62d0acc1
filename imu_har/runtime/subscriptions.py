"""Subscribe and unsubscribe at run time, with a callback on the broker's acknowledgement.

The recorder answers a start command only once the broker granted the device's
frames subscription; :class:`Acknowledgements` files the callback under the
request's message id before the acknowledgement can arrive (one lock around
send and filing), and marks the runtime ready when the subscriptions made on
connect are acknowledged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

logger = logging.getLogger(__name__)

Done = Callable[[list[Any]], None]


class Acknowledgements:
    """Callbacks waiting for SUBACK/UNSUBACK by message id; ``ready`` set on connect's."""

    def __init__(self, name: str, ready: threading.Event) -> None:
        self.name = name
        self.ready = ready
        self._lock = threading.Lock()
        self._done: dict[int, Done] = {}
        self._connect_mid: int | None = None

    def request(
        self,
        send: Callable[[], tuple[Any, int | None]],
        done: Done | None = None,
        on_connect: bool = False,
    ) -> bool:
        """Send a (un)subscribe; False when paho could not (not connected)."""
        with self._lock:  # the acknowledgement cannot be handled before ``done`` is filed
            rc, mid = send()
            if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
                return False
            if on_connect:
                self._connect_mid = mid
            if done is not None:
                self._done[mid] = done
        return True

    def on_ack(self, _c: Any, _u: Any, mid: int, reason_codes: Any, _p: Any) -> None:
        """Paho's on_subscribe / on_unsubscribe."""
        with self._lock:
            done = self._done.pop(mid, None)
            if mid == self._connect_mid:
                self._connect_mid = None
                self.ready.set()
        if done is not None:
            try:
                done(list(reason_codes))
            except Exception:  # a callback bug must not kill paho's thread
                logger.exception("%s subscription callback failed", self.name)
