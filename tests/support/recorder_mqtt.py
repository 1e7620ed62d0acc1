"""MQTT helpers for the recorder's broker tests: v5 request/response, device status, frames."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imu_har.protocol import topics
from imu_har.protocol.messages import DeviceStatus
from imu_har.runtime.client import Collector
from services.recorder.app import build
from services.recorder.handler import RecorderHandler
from services.recorder.segments import WriteFn
from services.recorder.settings import RecorderSettings
from tests.support.recorder import make_frame


class Requester:
    """Sends recorder commands as an MQTT v5 client and waits for the correlated reply.

    A subclass for another service's commands sets :attr:`command_topic`.
    """

    command_topic = topics.RECORDER_CMD  # formatted with the topic root

    def __init__(self, client: mqtt.Client, root: str = "har") -> None:
        self.client = client
        self.root = root
        self.response_topic = f"test/replies/{uuid.uuid4().hex[:8]}"
        self.replies = Collector(client, self.response_topic)
        self._taken: set[int] = set()

    def send(
        self,
        command: dict[str, Any] | bytes,
        timeout: float = 10.0,
        correlation: bytes | None = None,
    ) -> dict[str, Any]:
        """Publish ``command`` and return the reply carrying our (or the given) correlation data."""
        return self.wait(self.post(command, correlation), timeout)

    def post(
        self,
        command: dict[str, Any] | bytes,
        correlation: bytes | None = None,
        response_topic: str | None = None,
    ) -> bytes:
        """Publish ``command`` without waiting; its correlation data (for :meth:`wait`)."""
        correlation = correlation or uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = response_topic or self.response_topic
        props.CorrelationData = correlation
        payload = command if isinstance(command, bytes) else json.dumps(command).encode()
        topic = self.command_topic.format(self.root)
        self.client.publish(topic, payload, qos=1, properties=props)
        return correlation

    def wait(self, correlation: bytes, timeout: float = 10.0) -> dict[str, Any]:
        """The next reply carrying ``correlation`` not returned before."""

        def new(messages: list[mqtt.MQTTMessage]) -> list[mqtt.MQTTMessage]:
            return [
                m for m in messages if _correlation(m) == correlation and id(m) not in self._taken
            ]

        found = new(self.replies.wait_for(timeout=timeout, predicate=lambda m: bool(new(m))))
        if not found:
            raise TimeoutError(f"no reply with correlation data {correlation!r}")
        self._taken.add(id(found[0]))  # a repeated correlation waits for its own reply
        return dict(json.loads(found[0].payload))

    def replies_to(self, correlation: bytes) -> int:
        """How many replies carrying ``correlation`` arrived so far."""
        return sum(_correlation(m) == correlation for m in self.replies.wait_for(0, timeout=0))


def _correlation(message: mqtt.MQTTMessage) -> bytes | None:
    props = getattr(message, "properties", None)
    return getattr(props, "CorrelationData", None) if props else None


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``check()`` came true within ``timeout`` seconds (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def publish_frames(
    client: mqtt.Client, device: str, seqs: range, root: str = "har", qos: int = 1
) -> None:
    """Publish frames ``seqs`` of ``device`` and wait until the broker has each one."""
    topic = topics.IMU.format(root, device=device)
    infos = [client.publish(topic, make_frame(device, seq)[1], qos=qos) for seq in seqs]
    for info in infos:
        info.wait_for_publish(timeout=30)


def announce(client: mqtt.Client, device: str, root: str = "har") -> None:
    """Publish ``device``'s retained status as the gateway does (QoS 1), so it is known."""
    status = DeviceStatus(device=device, state="streaming", source="sim")
    topic = topics.DEVICE_STATUS.format(root, device=device)
    client.publish(topic, status.to_payload(), qos=1, retain=True).wait_for_publish(timeout=10)


def settings_for(broker: Any, tmp_path: Path, **kwargs: Any) -> RecorderSettings:
    """Recorder settings for the private broker, a fresh client id and a quick status."""
    return RecorderSettings(
        mqtt_port=broker.port,
        data_dir=tmp_path,
        client_id=f"rec-{uuid.uuid4().hex[:8]}",
        status_interval=0.3,
        **kwargs,
    )


def serve(run_service: Any, settings: RecorderSettings, write: WriteFn = os.write) -> Any:
    """The recorder made by :func:`services.recorder.app.build`, running on a thread."""
    return run_service(*build(settings, write))


def handler(service: Any) -> RecorderHandler:
    """The recorder handler of a service started by :func:`serve`."""
    assert isinstance(service.handler, RecorderHandler)
    return service.handler


def wait_rows(requester: Requester, rows: int, timeout: float = 20.0) -> dict[str, Any]:
    """The status once the first open session holds ``rows`` (or the last one at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        status = requester.send({"action": "status"})["data"]
        recording = status["recording"]
        done = recording and recording[0]["rows"] >= rows and status["error"] is None
        if done or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def record_session(
    requester: Requester, client: mqtt.Client, device: str, label: str, first: int, **extra: Any
) -> str:
    """One finished session of 10 frames (50 rows) of ``device`` (known, not recording); its id."""
    started = requester.send({"action": "start", "device": device, "label": label, **extra})
    assert started["ok"], started
    publish_frames(client, device, range(first, first + 10))
    deadline = time.monotonic() + 20
    while True:
        recording = requester.send({"action": "status"})["data"]["recording"]
        if sum(s["rows"] for s in recording if s["device"] == device) >= 50:
            break
        assert time.monotonic() < deadline, "the recorder did not record 50 rows"
        time.sleep(0.1)
    stopped = requester.send({"action": "stop", "device": device})
    assert stopped["ok"] and stopped["data"]["finalized"], stopped
    return str(started["data"]["session"])
