"""Issue 12, item 5 (broker part): the development brokers protect the retained model spec.

``har up``'s private broker (:func:`imu_har.ops.broker.private_broker`, as the
launcher starts it) and the compose development broker
(``deploy/mosquitto/mosquitto-dev.conf``) let anonymous clients watch, send
commands and feed raw frames, and let each service log in with its account:
a retained ``har/model/spec`` from anyone but the classifier stopped every
prediction before. The anonymous row of the table in docs/deployment.md is
checked on both, allowed and refused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from imu_har.ops.broker import BrokerAccess, MosquittoBroker, private_broker
from imu_har.ops.supervisor import SERVICES
from tests.support.deploy import (
    NOT_AUTHORIZED,
    Client,
    DeployBroker,
    acl_table,
    read_mismatches,
    write_mismatches,
)

pytestmark = pytest.mark.broker
SPEC = "har/model/spec"
# A spec that names channels no wearable has: the windower would cut no window from then on.
HOSTILE_SPEC = json.dumps({"channels": ["x"], "window": 25, "rate": 12.5}).encode()


class HarUp:
    """``har up``'s broker and the accounts it hands to its services."""

    def __init__(self) -> None:
        self.broker, self.access = private_broker(SERVICES)
        self.broker.start()

    def client(self, user: str | None) -> Client:
        pw = self.access.passwords[user] if user else None
        return Client(self.broker.port, user, pw)


@pytest.fixture(scope="module")
def har_up() -> Iterator[HarUp]:
    running = HarUp()
    yield running
    running.broker.cleanup()


@pytest.fixture(scope="module")
def dev() -> Iterator[DeployBroker]:
    running = DeployBroker("mosquitto-dev.conf", tls=False)
    yield running
    running.stop()


def retained_spec(connect: Callable[[], Client]) -> bytes | None:
    """The retained spec a newly started windower would get."""
    reader = connect()
    try:
        reader.subscribe(SPEC)
        reader.wait(lambda: bool(reader.messages), 2.0)
        return reader.messages[-1][1] if reader.messages else None
    finally:
        reader.close()


def assert_only_the_classifier_sets_the_spec(connect: Callable[[str | None], Client]) -> None:
    classifier_spec = json.dumps({"model": uuid.uuid4().hex}).encode()
    classifier = connect("classifier")
    assert classifier.publish(SPEC, classifier_spec, retain=True) < 128
    classifier.close()
    for intruder in (None, "gateway", "dashboard"):
        client = connect(intruder)
        assert client.connected, (intruder, client.connack)
        code = client.publish(SPEC, HOSTILE_SPEC, retain=True)
        client.close()
        assert code == NOT_AUTHORIZED, f"{intruder or 'anonymous'} published the spec ({code})"
    assert retained_spec(lambda: connect(None)) == classifier_spec


def test_under_har_up_only_the_classifier_sets_the_retained_spec(har_up: HarUp) -> None:
    assert_only_the_classifier_sets_the_spec(har_up.client)


def test_on_the_development_broker_only_the_classifier_sets_the_retained_spec(
    dev: DeployBroker,
) -> None:
    assert_only_the_classifier_sets_the_spec(lambda user: dev.client(user))


def test_every_service_har_up_starts_has_an_account() -> None:
    access = BrokerAccess.generate(SERVICES)
    assert set(SERVICES) <= set(acl_table()), "add the service to imu_har/ops/accounts.py"
    assert set(access.passwords) == set(SERVICES)


@pytest.mark.parametrize("where", ["har up", "development"])
def test_anonymous_clients_get_exactly_the_anonymous_row(
    har_up: HarUp, dev: DeployBroker, where: str
) -> None:
    connect: Callable[[str | None], Client]
    connect = har_up.client if where == "har up" else (lambda user: dev.client(user))
    table = acl_table()
    anonymous, dashboard, gateway = connect(None), connect("dashboard"), connect("gateway")
    writers = {"anonymous": anonymous, "dashboard": dashboard, "gateway": gateway}
    try:
        bad = write_mismatches(table, "anonymous", anonymous)
        bad += read_mismatches(table, {"anonymous": anonymous}, writers)
    finally:
        for client in writers.values():
            client.close()
    assert not bad, "\n".join(bad)


def test_har_up_services_log_in_with_their_own_passwords_only(har_up: HarUp) -> None:
    wrong = Client(har_up.broker.port, "classifier", har_up.access.passwords["windower"])
    assert not wrong.connected, wrong.connack
    wrong.close()
    other = har_up.client("windower")
    assert other.publish(SPEC, HOSTILE_SPEC, retain=True) == NOT_AUTHORIZED
    other.close()


def test_the_test_fixture_broker_stays_open(broker: MosquittoBroker) -> None:
    """Unit tests publish anything anonymously on the conftest broker (it is not har up's)."""
    client = Client(broker.port, None)
    assert client.publish(SPEC, b"{}") < 128
    client.close()
