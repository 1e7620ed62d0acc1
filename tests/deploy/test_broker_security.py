"""Issue 12 against the real compose broker config: client-id takeover (item 6) and TLS (item 9).

The broker runs from ``deploy/mosquitto/mosquitto.conf`` with the password
files and certificate written by ``make-passwd.sh`` (:class:`DeployBroker`).
The recorder keeps a persistent session under its fixed client id
``har-recorder-har`` on the internal port, as in compose; other accounts try
to take it over from the port that is exposed to the network.
"""

from __future__ import annotations

import socket
import ssl
import uuid
from collections.abc import Iterator

import pytest

from tests.support.deploy import Client, DeployBroker, password

pytestmark = pytest.mark.broker
RECORDER_ID = "har-recorder-har"  # services/recorder: "har-recorder-" + topic root


@pytest.fixture(scope="module")
def broker() -> Iterator[DeployBroker]:
    running = DeployBroker()
    yield running
    running.stop()


def recorder(broker: DeployBroker) -> Client:
    """The recorder's durable session: fixed id, no clean start, QoS 1 frames."""
    client = broker.client(
        "recorder", client_id=RECORDER_ID, clean_start=False, session_expiry=3600
    )
    assert client.connected, client.connack
    return client


# -- item 6: no account can take another's client id -------------------------------------
@pytest.mark.parametrize("intruder", ["wrist-1", "windower", "monitor"])
def test_another_account_cannot_kick_the_live_recorder(broker: DeployBroker, intruder: str) -> None:
    live = recorder(broker)
    live.subscribe("har/+/imu")
    gateway = broker.client("gateway")
    frame = uuid.uuid4().bytes
    try:
        thief = broker.client(intruder, tls=True, client_id=RECORDER_ID, clean_start=False)
        assert thief.connected, thief.connack  # it may log in, but under its own name
        assert gateway.publish("har/sim-1/imu", frame) < 128
        assert live.wait(lambda: live.got(frame)), "the recorder no longer gets frames"
        assert live.disconnects == [], f"{intruder} kicked the recorder off"
        thief.close()
    finally:
        live.close()
        gateway.close()


@pytest.mark.parametrize("intruder", ["wrist-1", "windower"])
def test_another_account_cannot_take_the_recorders_queued_frames(
    broker: DeployBroker, intruder: str
) -> None:
    first = recorder(broker)
    first.subscribe("har/+/imu")
    first.close()  # offline: the broker queues its QoS 1 frames (session expiry 1 h)
    gateway = broker.client("gateway")
    frames = [uuid.uuid4().bytes for _ in range(3)]
    try:
        for frame in frames:
            assert gateway.publish("har/sim-1/imu", frame) < 128
        thief = broker.client(intruder, tls=True, client_id=RECORDER_ID, clean_start=False)
        assert thief.connected, thief.connack
        # the windower may read frames: had it got the recorder's session, they would come now
        assert not thief.wait(lambda: bool(thief.messages), 1.0), thief.messages
        thief.close()
        back = recorder(broker)
        try:
            assert back.wait(lambda: all(back.got(f) for f in frames)), "queued frames lost"
        finally:
            back.close()
    finally:
        gateway.close()


def test_devices_and_phones_cannot_log_in_on_the_internal_port(broker: DeployBroker) -> None:
    live = recorder(broker)
    try:
        for intruder in ("wrist-1", "phone"):
            thief = Client(broker.port, intruder, password(intruder), client_id=RECORDER_ID)
            assert not thief.connected, (intruder, thief.connack)
            thief.close()
        assert live.disconnects == []
    finally:
        live.close()


# -- item 9: the exposed port speaks TLS only ---------------------------------------------
def test_tls_with_the_ca_and_a_password_works(broker: DeployBroker) -> None:
    reader = broker.client("monitor", tls=True)
    device = broker.client("wrist-1", tls=True)
    frame = uuid.uuid4().bytes
    try:
        assert reader.connected and device.connected
        reader.subscribe("har/+/imu")
        assert device.publish("har/wrist-1/imu", frame) < 128
        assert reader.wait(lambda: reader.got(frame))
    finally:
        reader.close()
        device.close()


def test_a_plain_connection_to_the_tls_port_fails(broker: DeployBroker) -> None:
    plain = Client(broker.tls_port, "monitor", password("monitor"))  # no TLS
    assert not plain.connected, plain.connack
    plain.close()


def test_anonymous_clients_are_refused_over_tls(broker: DeployBroker) -> None:
    anonymous = Client(broker.tls_port, None, ca=broker.ca)
    assert not anonymous.connected, anonymous.connack
    anonymous.close()


@pytest.mark.parametrize(("hostname", "ok"), [("localhost", True), ("elsewhere.example", False)])
def test_the_certificate_names_the_configured_hosts(
    broker: DeployBroker, hostname: str, ok: bool
) -> None:
    context = ssl.create_default_context(cafile=str(broker.ca))
    with socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as raw:
        if ok:
            with context.wrap_socket(raw, server_hostname=hostname) as tls:
                assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        else:
            with pytest.raises(ssl.SSLCertVerificationError):
                context.wrap_socket(raw, server_hostname=hostname)


def test_a_client_that_trusts_another_ca_is_refused_the_handshake(broker: DeployBroker) -> None:
    context = ssl.create_default_context()  # the system CAs only, not ours
    with (
        socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="localhost")
