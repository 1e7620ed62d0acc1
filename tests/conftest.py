"""Shared fixtures: a private, real Mosquitto per test module, clients, services in threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from imu_har.ops.broker import MosquittoBroker
from imu_har.runtime.client import connect
from imu_har.runtime.service import Handler, ServiceRuntime


@pytest.fixture(scope="module")
def broker() -> Iterator[MosquittoBroker]:
    """A private Mosquitto on a free loopback port, shared by one test module."""
    with MosquittoBroker() as running:
        yield running


@pytest.fixture()
def mqtt_client(broker: MosquittoBroker):  # type: ignore[no-untyped-def]
    """A connected MQTT v5 client on the private broker."""
    client = connect(broker.host, broker.port)
    yield client
    client.loop_stop()
    client.disconnect()


@dataclass
class RunningService:
    """A service handler served by its runtime on a background thread."""

    runtime: ServiceRuntime
    handler: Handler
    thread: threading.Thread

    def stop(self, timeout: float = 15.0) -> None:
        self.runtime.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.runtime.name} did not stop"


@pytest.fixture()
def run_service() -> Iterator[Callable[[ServiceRuntime, Handler], RunningService]]:
    """Start ``runtime.run(handler)`` in a thread, wait until connected; stopped at teardown."""
    started: list[RunningService] = []

    def start(runtime: ServiceRuntime, handler: Handler) -> RunningService:
        thread = threading.Thread(target=runtime.run, args=(handler,), daemon=True)
        thread.start()
        assert runtime.ready.wait(10), f"{runtime.name} did not connect and subscribe"
        service = RunningService(runtime, handler, thread)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.thread.is_alive():
            service.stop()
