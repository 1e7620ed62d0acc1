"""What a service plugs into the runtime, and the rule for handling a batch.

A :class:`Handler` gets received messages in batches on the service's own
thread. :func:`each` is how a handler walks a batch: one message's bad payload
or bug never stops the messages after it (issue 12: a command whose reply
raised used to leave the rest of the recorder's batch unacknowledged, and the
broker's in-flight window filled until no command got through).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import publish_topic_problem
from imu_har.runtime.inbox import Inbound

logger = logging.getLogger(__name__)


class Handler(Protocol):
    """What a service plugs into the runtime."""

    def subscriptions(self) -> list[tuple[str, int]]:
        """Topic filters and QoS to (re)subscribe on every connect."""

    def handle_batch(self, messages: list[Inbound]) -> None:
        """Process received messages (on the service thread, never paho's)."""

    def tick(self, now: float) -> None:
        """Periodic work: flush, evict, time limits."""

    def details(self) -> dict[str, Any]:
        """Service-specific state for the status topic."""

    def close(self) -> None:
        """Flush everything on shutdown."""


class Rejects(Protocol):
    """The part of the runtime :func:`each` reports to."""

    name: str

    def reject(self, reason: str, detail: str) -> None:
        """Count and log a rejected input."""

    def error(self, text: str) -> None:
        """Record an operational error."""


def each(
    runtime: Rejects,
    messages: Iterable[Inbound],
    handle: Callable[[Inbound], None],
    after: Callable[[Inbound], None] | None = None,
) -> None:
    """Call ``handle(message)`` for every message, whatever one of them raises.

    A :class:`PayloadError` is counted under its reason; any other exception is
    a bug: counted as ``handler_error``, logged with its traceback, and the next
    message is handled. ``after(message)`` runs for every message however it
    went (the recorder acknowledges there).
    """
    for message in messages:
        try:
            handle(message)
        except PayloadError as exc:
            runtime.reject(exc.reason, f"{message.topic!r}: {exc.args[0]}")
        except Exception as exc:
            runtime.reject("handler_error", f"{message.topic!r}: {exc!r}")
            logger.exception("%s failed on a message of %r", runtime.name, message.topic)
            runtime.error(f"handler failed on {message.topic!r}: {exc!r}")
        finally:
            if after is not None:
                after(message)


def reply_target(request: Inbound, fallback: str) -> tuple[str, Properties | None, str | None]:
    """Where to answer ``request``: ``(topic, properties, problem)``.

    An MQTT v5 request names its response topic and correlation data; the reply
    goes there with the same correlation data. The response topic comes from
    whoever sent the command, so one that cannot be published to (a wildcard
    such as ``har/#``, a control character, over 65,535 bytes) is not used:
    the reply goes to ``fallback`` and ``problem`` says why.
    """
    props = request.properties
    response_topic = getattr(props, "ResponseTopic", None) if props else None
    if response_topic is None:
        return fallback, None, None
    problem = publish_topic_problem(response_topic)
    if problem is not None:
        return fallback, None, f"response topic {response_topic!r} {problem}"
    out = Properties(PacketTypes.PUBLISH)
    correlation = getattr(props, "CorrelationData", None)
    if isinstance(correlation, bytes | bytearray):
        out.CorrelationData = bytes(correlation)
    return str(response_topic), out, None
