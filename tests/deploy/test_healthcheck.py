"""deploy/healthcheck.py, the containers' healthcheck, against a real broker and HTTP server."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from imu_har.ops.broker import MosquittoBroker, free_port
from imu_har.protocol.messages import ServiceStatus

pytestmark = pytest.mark.broker
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "healthcheck.py"


def healthcheck(broker: MosquittoBroker, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAR_")}
    env.update(HAR_MQTT_HOST=broker.host, HAR_MQTT_PORT=str(broker.port))
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def retain(client: mqtt.Client, service: str, state: str, updated_at: float) -> None:
    status = ServiceStatus(service=service, instance="x-1", state=state, updated_at=updated_at)  # type: ignore[arg-type]
    info = client.publish(f"har/service/{service}/status", status.to_payload(), qos=1, retain=True)
    info.wait_for_publish(5)


def test_online_and_fresh_is_healthy(broker: MosquittoBroker, mqtt_client: mqtt.Client) -> None:
    retain(mqtt_client, "windower", "online", time.time())
    result = healthcheck(broker, "windower")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("state", "age", "reason"),
    [("offline", 0.0, "windower is offline"), ("online", 600.0, "old (limit 20 s)")],
)
def test_offline_or_stale_is_unhealthy(
    broker: MosquittoBroker, mqtt_client: mqtt.Client, state: str, age: float, reason: str
) -> None:
    retain(mqtt_client, "windower", state, time.time() - age)
    result = healthcheck(broker, "windower")
    assert result.returncode == 1
    assert reason in result.stderr


def test_a_service_without_status_is_unhealthy(broker: MosquittoBroker) -> None:
    result = healthcheck(broker, "nosuchservice", "--timeout", "1")
    assert result.returncode == 1
    assert "no status on har/service/nosuchservice/status" in result.stderr


def test_no_broker_is_unhealthy(broker: MosquittoBroker) -> None:
    gone = MosquittoBroker(port=free_port())  # never started: nothing listens there
    result = healthcheck(gone, "windower", "--timeout", "1")
    assert result.returncode == 1
    assert "unhealthy:" in result.stderr


@pytest.fixture()
def http_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_http_check(broker: MosquittoBroker, http_server: int) -> None:
    ok = healthcheck(broker, "--http", f"http://127.0.0.1:{http_server}/")
    assert ok.returncode == 0, ok.stderr
    missing = healthcheck(broker, "--http", f"http://127.0.0.1:{http_server}/no/such/page")
    assert missing.returncode == 1 and "404" in missing.stderr
    down = healthcheck(broker, "--http", f"http://127.0.0.1:{free_port()}/", "--timeout", "1")
    assert down.returncode == 1
