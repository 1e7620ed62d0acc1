"""The compose broker's real config: passwords, no anonymous access, topic rights per user.

Runs the real ``mosquitto`` with ``deploy/mosquitto/mosquitto.conf`` and ``acl``
(only paths and the port adapted) and a password file written by
``deploy/mosquitto/make-passwd.sh`` from an env file, as a user would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from imu_har.ops.broker import find_mosquitto, free_port

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "mosquitto"
PASSWORDS = {
    "gateway": "gw-pass",
    "windower": "wi-pass",
    "classifier": "cl-pass",
    "recorder": "re-pass",
    "dashboard": "da-pass",
    "monitor": "mo-pass",
    "wrist-1": "wrist-pass",
    "ankle-2": "ankle-pass",
}
NOT_AUTHORIZED = 135  # MQTT v5 reason code in PUBACK


def write_env(path: Path) -> None:
    lines = [f"HAR_{u.upper()}_PASSWORD={p}" for u, p in PASSWORDS.items() if "-" not in u]
    lines.append('HAR_DEVICE_USERS="wrist-1:wrist-pass ankle-2:ankle-pass"')
    path.write_text("\n".join(lines) + "\n")


def adapt(config: str, workdir: Path, port: int, auth: bool = True) -> str:
    """The deploy config with container paths and port replaced; fails if they moved."""
    replacements = {
        "/mosquitto/data/": f"{workdir}/data/",
        "listener 1883\n": f"listener {port} 127.0.0.1\n",
    }
    if auth:
        replacements["/mosquitto/config/"] = f"{workdir}/"
    for old, new in replacements.items():
        assert old in config, f"deploy config no longer contains {old!r}"
        config = config.replace(old, new)
    return config


class Broker:
    """The real mosquitto on an adapted copy of a deploy config."""

    def __init__(self, config_name: str, passwd: bool = True) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="har-deploy-broker-"))
        (self.workdir / "data").mkdir()
        self.port = free_port()
        if passwd:
            write_env(self.workdir / "env")
            script = DEPLOY / "make-passwd.sh"
            subprocess.run(
                [str(script), str(self.workdir / "env"), str(self.workdir / "passwd")],
                check=True,
                timeout=60,
            )
            shutil.copy(DEPLOY / "acl", self.workdir / "acl")
        config = adapt((DEPLOY / config_name).read_text(), self.workdir, self.port, passwd)
        (self.workdir / "mosquitto.conf").write_text(config)
        if os.geteuid() == 0:  # root mosquitto drops to its user, as in the container
            owner = pwd.getpwnam("mosquitto")
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self.log = (self.workdir / "log").open("wb")
        self.process = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.workdir / "mosquitto.conf")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.workdir / "log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("broker did not listen")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Client:
    """A paho v5 client that records its CONNACK, PUBACK reason codes and messages."""

    def __init__(self, port: int, user: str | None, password: str | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        if user:
            self.client.username_pw_set(user, password)
        self.connack: mqtt.ReasonCode | None = None
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._notify()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.wait(lambda: self.connack is not None), "no CONNACK"

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_connect(self, _c: object, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object):  # type: ignore[no-untyped-def]
        self.connack = rc
        self._notify()

    def _on_publish(self, _c: object, _u: object, mid: int, rc: mqtt.ReasonCode, _p: object):  # type: ignore[no-untyped-def]
        with self._cond:
            self.pubacks[mid] = rc.value
            self._cond.notify_all()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def wait(self, check, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
        with self._cond:
            return self._cond.wait_for(check, timeout)

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        assert self.wait(lambda: info.mid in self.pubacks), f"no PUBACK for {topic}"
        return self.pubacks[info.mid]

    def subscribe(self, topic_filter: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe(topic_filter, 1)
        assert done.wait(5), "no SUBACK"

    def got(self, payload: bytes) -> bool:
        with self._cond:
            return any(p == payload for _, p in self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    running = Broker("mosquitto.conf")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clients(broker: Broker) -> Iterator[dict[str, Client]]:
    made = {user: Client(broker.port, user, password) for user, password in PASSWORDS.items()}
    yield made
    for client in made.values():
        client.close()


def test_anonymous_and_wrong_passwords_are_refused(broker: Broker) -> None:
    for user, password in [(None, None), ("gateway", "wrong"), ("intruder", "gw-pass")]:
        client = Client(broker.port, user, password)
        assert client.connack is not None and client.connack.is_failure, (user, client.connack)
        client.close()


@pytest.mark.parametrize(
    ("user", "topic", "allowed"),
    [
        ("wrist-1", "har/wrist-1/imu", True),
        ("wrist-1", "har/wrist-1/status", True),
        ("wrist-1", "har/ankle-2/imu", False),  # another device's topic
        ("wrist-1", "har/wrist-1/prediction", False),
        ("wrist-1", "har/recorder/cmd", False),
        ("wrist-1", "har/service/gateway/status", False),
        ("ankle-2", "har/ankle-2/imu", True),
        ("gateway", "har/sim-1/imu", True),
        ("gateway", "har/sim-1/status", True),
        ("gateway", "har/sim-1/truth", True),
        ("gateway", "har/service/gateway/status", True),
        ("gateway", "har/sim-1/prediction", False),
        ("gateway", "har/service/windower/status", False),
        ("windower", "har/sim-1/window", True),
        ("windower", "har/service/windower/status", True),
        ("windower", "har/sim-1/imu", False),
        ("windower", "har/sim-1/prediction", False),
        ("classifier", "har/sim-1/prediction", True),
        ("classifier", "har/model/spec", True),
        ("classifier", "har/classifier/reply", True),
        ("classifier", "har/dashboard/dash-1/reply", True),
        ("classifier", "har/service/classifier/status", True),
        ("classifier", "har/sim-1/window", False),
        ("classifier", "har/recorder/cmd", False),
        ("recorder", "har/recorder/reply", True),
        ("recorder", "har/recorder/status", True),
        ("recorder", "har/dashboard/dash-1/reply", True),
        ("recorder", "har/service/recorder/status", True),
        ("recorder", "har/sim-1/imu", False),
        ("recorder", "har/classifier/cmd", False),
        ("dashboard", "har/recorder/cmd", True),
        ("dashboard", "har/classifier/cmd", True),
        ("dashboard", "har/sim-1/imu", False),
        ("dashboard", "har/model/spec", False),
        ("monitor", "har/sim-1/imu", False),
    ],
)
def test_who_may_publish_where(
    clients: dict[str, Client], user: str, topic: str, allowed: bool
) -> None:
    code = clients[user].publish(topic, uuid.uuid4().bytes)
    if allowed:
        assert code < 128, f"{user} refused on {topic}: reason {code}"
    else:
        assert code == NOT_AUTHORIZED, f"{user} published on {topic}: reason {code}"


@pytest.mark.parametrize(
    ("reader", "topic_filter", "publisher", "topic", "allowed"),
    [
        ("windower", "har/+/imu", "wrist-1", "har/wrist-1/imu", True),
        ("windower", "har/model/spec", "classifier", "har/model/spec", True),
        ("classifier", "har/+/window", "windower", "har/sim-1/window", True),
        ("classifier", "har/classifier/cmd", "dashboard", "har/classifier/cmd", True),
        ("classifier", "har/+/imu", "gateway", "har/sim-1/imu", False),
        ("recorder", "har/+/imu", "gateway", "har/sim-1/imu", True),
        ("recorder", "har/recorder/cmd", "dashboard", "har/recorder/cmd", True),
        ("recorder", "har/classifier/cmd", "dashboard", "har/classifier/cmd", False),
        ("dashboard", "har/#", "classifier", "har/sim-1/prediction", True),
        ("dashboard", "har/dashboard/+/reply", "recorder", "har/dashboard/d1/reply", True),
        ("wrist-1", "har/+/prediction", "classifier", "har/wrist-1/prediction", True),
        ("wrist-1", "har/+/prediction", "classifier", "har/ankle-2/prediction", False),
        ("gateway", "har/+/imu", "wrist-1", "har/wrist-1/imu", False),
        ("monitor", "har/#", "gateway", "har/sim-1/truth", True),
    ],
)
def test_who_may_read_what(
    broker: Broker, reader: str, topic_filter: str, publisher: str, topic: str, allowed: bool
) -> None:
    subscriber = Client(broker.port, reader, PASSWORDS[reader])
    witness = Client(broker.port, "monitor", PASSWORDS["monitor"])  # reads all of har/#
    sender = Client(broker.port, publisher, PASSWORDS[publisher])
    try:
        subscriber.subscribe(topic_filter)
        witness.subscribe("har/#")
        payload = uuid.uuid4().bytes
        assert sender.publish(topic, payload) < 128
        assert witness.wait(lambda: witness.got(payload)), "the broker did not route it"
        if allowed:
            assert subscriber.wait(lambda: subscriber.got(payload)), f"{reader} missed {topic}"
        else:
            assert not subscriber.wait(lambda: subscriber.got(payload), 0.5), (
                f"{reader} read {topic}"
            )
    finally:
        for client in (subscriber, witness, sender):
            client.close()


def test_the_development_config_allows_anonymous_clients() -> None:
    dev = Broker("mosquitto-dev.conf", passwd=False)
    try:
        # services keep their user names (and maybe passwords) in development too
        for user, password in [(None, None), ("gateway", None), ("monitor", "anything")]:
            client = Client(dev.port, user, password)
            assert client.connack is not None and not client.connack.is_failure, user
            assert client.publish("har/anyone/imu", b"x") < 128
            client.close()
    finally:
        dev.stop()


def test_make_passwd_creates_env_with_random_passwords(tmp_path: Path) -> None:
    env_file, passwd = tmp_path / ".env", tmp_path / "passwd"
    script = DEPLOY / "make-passwd.sh"
    subprocess.run([str(script), str(env_file), str(passwd)], check=True, timeout=60)
    text = env_file.read_text()
    assert "=change-me" not in text
    secrets = [line.split("=", 1)[1] for line in text.splitlines() if "_PASSWORD=" in line]
    assert len(secrets) == 6 and len(set(secrets)) == 6 and all(len(s) >= 16 for s in secrets)
    assert env_file.stat().st_mode & 0o077 == 0  # secrets readable by the owner only
    assert passwd.stat().st_mode & 0o077 == 0
    users = [line.split(":", 1)[0] for line in passwd.read_text().splitlines()]
    assert users == ["gateway", "windower", "classifier", "recorder", "dashboard", "monitor"]
    assert all("pass" not in line.split(":", 1)[1] for line in passwd.read_text().splitlines())


@pytest.mark.parametrize(
    "bad", ["HAR_GATEWAY_PASSWORD=change-me", "HAR_GATEWAY_PASSWORD=", 'HAR_DEVICE_USERS="nopass"']
)
def test_make_passwd_refuses_unset_passwords(tmp_path: Path, bad: str) -> None:
    env_file = tmp_path / ".env"
    write_env(env_file)
    key = bad.split("=", 1)[0]
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith(key)]
    env_file.write_text("\n".join([*lines, bad]) + "\n")
    result = subprocess.run(
        [str(DEPLOY / "make-passwd.sh"), str(env_file), str(tmp_path / "passwd")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "make-passwd:" in result.stderr
    assert not (tmp_path / "passwd").exists()
