"""The compose broker's topic rights, checked against the table in docs/deployment.md.

Runs the real ``mosquitto`` with ``deploy/mosquitto/mosquitto.conf`` and ``acl``
(only paths and ports adapted) and the password files written by
``make-passwd.sh`` (:class:`tests.support.deploy.DeployBroker`). Every account
publishes every sample topic and reads everything it is sent; what the broker
allows must be exactly what the table says, allowed and refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from imu_har.ops import accounts, acl
from imu_har.protocol.topics import RESERVED_NAMES
from tests.support.deploy import (
    DEPLOY,
    DEVICES,
    NOT_AUTHORIZED,
    PASSWORDS,
    RESERVED,
    Client,
    DeployBroker,
    acl_table,
    read_mismatches,
    write_mismatches,
)

pytestmark = pytest.mark.broker
ACCOUNTS = [*PASSWORDS, *DEVICES]
ON_TLS_ONLY = {"phone", "hass", *DEVICES}  # not in passwd-services


@pytest.fixture(scope="module")
def broker() -> Iterator[DeployBroker]:
    running = DeployBroker()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clients(broker: DeployBroker) -> Iterator[dict[str, Client]]:
    made = {user: broker.client(user, tls=user in ON_TLS_ONLY) for user in ACCOUNTS}
    yield made
    for client in made.values():
        client.close()


def test_the_committed_acl_is_the_generated_one() -> None:
    assert (DEPLOY / "mosquitto" / "acl").read_text() == acl.render_acl("har")
    assert (DEPLOY / "mosquitto" / "acl-anonymous").read_text() == acl.render_anonymous("har")
    assert set(RESERVED.split()) == RESERVED_NAMES  # the table's <reserved>


def test_the_documented_table_is_the_generated_rules() -> None:
    """Every filter of accounts.py is in the table and the other way round (per account)."""
    table = acl_table()

    def documented(rules: list[accounts.Rule]) -> tuple[set[str], set[str], set[str]]:
        reads = {r.topic for r in rules if r.access in {"read", "readwrite"}}
        writes = {r.topic for r in rules if r.access in {"write", "readwrite"}}
        return reads, writes, {r.topic for r in rules if r.access == "deny"}

    def in_table(key: str) -> tuple[set[str], set[str], set[str]]:
        row = table[key]
        sets = (row.reads, row.writes, row.refused)
        return tuple({f.replace("<id>", "%u") for f in s} for s in sets)  # type: ignore[return-value]

    for account in accounts.accounts():
        own_status = f"har/service/{account.name}/status"
        reads, writes, refused = documented(list(account.rules))
        t_reads, t_writes, t_refused = in_table(account.name)
        # the own status is readwrite; the table lists its read under har/service/+/status or har/#
        in_code = (reads - {own_status}, writes, refused)
        assert in_code == (t_reads, t_writes, t_refused), account.name
    assert documented(accounts.device_rules()) == in_table("device")
    assert documented(accounts.anonymous_rules()) == in_table("anonymous")
    assert set(table) == {"device", "anonymous", *accounts.account_names()}


def test_anonymous_and_wrong_passwords_are_refused(broker: DeployBroker) -> None:
    for port in (broker.port, broker.tls_port):
        ca = broker.ca if port == broker.tls_port else None
        for user, pw in [(None, None), ("gateway", "wrong"), ("intruder", "gw-pass")]:
            client = Client(port, user, pw, ca=ca)
            assert not client.connected, (port, user, client.connack)
            client.close()


@pytest.mark.parametrize("user", ACCOUNTS)
def test_each_account_logs_in_on_its_documented_ports(broker: DeployBroker, user: str) -> None:
    row = acl_table()["device" if user in DEVICES else user]
    for tls, port in ((False, "1883"), (True, "8883")):
        client = broker.client(user, tls=tls)
        try:
            assert client.connected == (port in row.ports), (user, port, client.connack)
        finally:
            client.close()


@pytest.mark.parametrize("user", ACCOUNTS)
def test_each_account_writes_exactly_what_the_table_says(
    clients: dict[str, Client], user: str
) -> None:
    bad = write_mismatches(acl_table(), user, clients[user])
    assert not bad, "\n".join(bad)


def test_each_account_reads_exactly_what_the_table_says(broker: DeployBroker) -> None:
    # one client per account (on the TLS port an account is one connection): reader and writer
    made = {user: broker.client(user, tls=user in ON_TLS_ONLY) for user in ACCOUNTS}
    try:
        bad = read_mismatches(acl_table(), made, made)
    finally:
        for client in made.values():
            client.close()
    assert not bad, "\n".join(bad)


def test_only_monitor_reads_the_broker_statistics(broker: DeployBroker) -> None:
    for user, allowed in [("monitor", True), ("dashboard", False), ("gateway", False)]:
        client = broker.client(user)
        try:
            client.subscribe("$SYS/broker/version")  # retained since the broker started
            got = client.wait(lambda c=client: bool(c.messages), 10 if allowed else 2)
            assert got == allowed, user
        finally:
            client.close()


# -- issue 12, item 7: the rows that were wrong ------------------------------------------
def test_the_gateway_cannot_replace_the_recorders_retained_status(broker: DeployBroker) -> None:
    recorder, gateway = broker.client("recorder"), broker.client("gateway")
    real, forged = uuid.uuid4().bytes, uuid.uuid4().bytes
    try:
        assert recorder.publish("har/recorder/status", real, retain=True) < 128
        assert gateway.publish("har/recorder/status", forged, retain=True) == NOT_AUTHORIZED
        assert gateway.publish("har/sim-1/status", uuid.uuid4().bytes, retain=True) < 128
        late = broker.client("monitor")  # gets the retained status on subscribing
        late.subscribe("har/recorder/status")
        assert late.wait(lambda: late.got(real) or late.got(forged))
        assert late.got(real) and not late.got(forged)
        late.close()
    finally:
        recorder.close()
        gateway.close()


def test_the_recorder_reads_device_statuses(broker: DeployBroker) -> None:
    recorder, gateway = broker.client("recorder"), broker.client("gateway")
    status = uuid.uuid4().bytes
    try:
        recorder.subscribe("har/+/status")
        assert gateway.publish("har/sim-7/status", status) < 128
        assert recorder.wait(lambda: recorder.got(status)), "the recorder missed a device status"
    finally:
        recorder.close()
        gateway.close()
