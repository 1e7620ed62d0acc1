"""The Docker Compose broker as the deployment runs it, without Docker.

:class:`DeployBroker` runs the real ``mosquitto`` with a config from
``deploy/mosquitto`` (only container paths and ports adapted), the committed
ACL, and the password files, TLS certificate and dashboard login written by
``deploy/mosquitto/make-passwd.sh`` from an env file, as a user would.
:class:`Client` is a paho v5 client that records its CONNACK, PUBACK reason
codes, disconnects and messages.

``IMU_HAR_DEPLOY_DIR`` points the tests at another copy of ``deploy/`` (for
example one with an older ``acl`` or ``mosquitto.conf``) to show that a
regression test fails there.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imu_har.ops.broker import find_mosquitto, free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = Path(os.environ.get("IMU_HAR_DEPLOY_DIR") or REPO / "deploy")
PASSWORDS = {
    "gateway": "gw-pass",
    "windower": "wi-pass",
    "classifier": "cl-pass",
    "recorder": "re-pass",
    "dashboard": "da-pass",
    "workout": "wo-pass",
    "trainer": "tr-pass",
    "homeassistant": "ha-pass",
    "monitor": "mo-pass",
    "phone": "ph-pass",
    "hass": "hs-pass",
}
DEVICES = {"wrist-1": "wrist-pass", "ankle-2": "ankle-pass"}
LOGIN_PASSWORD = "login-pass"  # noqa: S105 (a test password: the dashboard's user admin)
NOT_AUTHORIZED = 135  # MQTT v5 reason code in PUBACK and CONNACK


def password(user: str) -> str:
    """The test password of an account or device."""
    return {**PASSWORDS, **DEVICES}[user]


def write_env(path: Path, hostnames: str = "localhost 127.0.0.1") -> None:
    """An env file with the test passwords, as a user would edit ``.env``."""
    lines = [f"HAR_{user.upper()}_PASSWORD={pw}" for user, pw in PASSWORDS.items()]
    lines.append(f"HAR_DASHBOARD_LOGIN_PASSWORD={LOGIN_PASSWORD}")
    lines.append('HAR_DEVICE_USERS="' + " ".join(f"{d}:{p}" for d, p in DEVICES.items()) + '"')
    lines.append(f'HAR_BROKER_HOSTNAMES="{hostnames}"')
    path.write_text("\n".join(lines) + "\n")


def make_secrets(env_file: Path, out: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``make-passwd.sh ENV_FILE OUT`` (OUT takes the place of ``deploy/``)."""
    return subprocess.run(
        [str(DEPLOY / "mosquitto" / "make-passwd.sh"), str(env_file), str(out)],
        capture_output=True, text=True, timeout=120, check=check,
    )  # fmt: skip


def adapt(config: str, config_dir: Path, data_dir: Path, ports: dict[int, int]) -> str:
    """The deploy config with container paths and listener ports replaced; fails if they moved."""
    replacements = {"/mosquitto/data/": f"{data_dir}/", "/mosquitto/config/": f"{config_dir}/"}
    replacements |= {f"listener {c}\n": f"listener {h} 127.0.0.1\n" for c, h in ports.items()}
    for old, new in replacements.items():
        assert old in config, f"deploy config no longer contains {old!r}"
        config = config.replace(old, new)
    return config


class DeployBroker:
    """The real mosquitto on an adapted copy of ``deploy/mosquitto/<config_name>``."""

    def __init__(self, config_name: str = "mosquitto.conf", tls: bool = True) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="har-deploy-broker-"))
        self.out = self.workdir / "deploy"  # what make-passwd.sh writes
        self.config_dir = self.out / "mosquitto"
        write_env(self.workdir / "env")
        make_secrets(self.workdir / "env", self.out)
        for name in ("acl", "acl-anonymous"):
            shutil.copy(DEPLOY / "mosquitto" / name, self.config_dir / name)
        dev_acl = (DEPLOY / "mosquitto" / "acl-anonymous").read_text()
        dev_acl += (DEPLOY / "mosquitto" / "acl").read_text()
        (self.config_dir / "acl-dev").write_text(dev_acl)  # as docker-compose.dev.yml does
        (self.workdir / "data").mkdir()
        self.port, self.tls_port = free_port(), free_port()
        ports = {1883: self.port, **({8883: self.tls_port} if tls else {})}
        config = (DEPLOY / "mosquitto" / config_name).read_text()
        config = adapt(config, self.config_dir, self.workdir / "data", ports)
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
        for port in ports.values():
            self._wait_listening(port)

    @property
    def ca(self) -> Path:
        """The CA certificate clients trust (make-passwd.sh's ``tls/ca.crt``)."""
        return self.config_dir / "tls" / "ca.crt"

    def _wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.workdir / "log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"broker did not listen on {port}")

    def client(self, user: str | None, tls: bool = False, **options: object) -> Client:
        """A client of ``user`` (its test password) on the internal or the TLS listener."""
        pw = password(user) if user else None
        if tls:
            return Client(self.tls_port, user, pw, ca=self.ca, **options)  # type: ignore[arg-type]
        return Client(self.port, user, pw, **options)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Client:
    """A paho v5 client that records CONNACK, PUBACK reason codes, disconnects and messages."""

    def __init__(
        self,
        port: int,
        user: str | None,
        password: str | None = None,
        *,
        ca: Path | None = None,
        client_id: str = "",
        clean_start: bool = True,
        session_expiry: int = 0,
        reconnect: bool = False,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=reconnect,
        )
        if user:
            self.client.username_pw_set(user, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.connack: mqtt.ReasonCode | None = None
        self.assigned_id: str | None = None
        self.disconnects: list[int] = []
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry
        self.client.connect("127.0.0.1", port, clean_start=clean_start, properties=props)
        self.client.loop_start()
        assert self.wait(lambda: self.connack is not None or bool(self.disconnects)), "no CONNACK"

    @property
    def connected(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_connect(self, _c: object, _u: object, _f: object, rc: mqtt.ReasonCode, props: object):  # type: ignore[no-untyped-def]
        with self._cond:
            self.connack = rc
            self.assigned_id = getattr(props, "AssignedClientIdentifier", None)
            self._cond.notify_all()

    def _on_disconnect(self, _c: object, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object):  # type: ignore[no-untyped-def]
        with self._cond:
            self.disconnects.append(rc.value)
            self._cond.notify_all()

    def _on_publish(self, _c: object, _u: object, mid: int, rc: mqtt.ReasonCode, _p: object):  # type: ignore[no-untyped-def]
        with self._cond:
            self.pubacks[mid] = rc.value
            self._cond.notify_all()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def wait(self, check: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(check, timeout)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert self.wait(lambda: info.mid in self.pubacks), f"no PUBACK for {topic}"
        return self.pubacks[info.mid]

    def subscribe(self, topic_filter: str, qos: int = 1) -> list[int]:
        """Subscribe and return the SUBACK reason codes."""
        done: list[list[int]] = []
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: (
            done.append([c.value for c in codes]),
            self._notify(),
        )
        self.client.subscribe(topic_filter, qos)
        assert self.wait(lambda: bool(done)), "no SUBACK"
        return done[0]

    def got(self, payload: bytes) -> bool:
        with self._cond:
            return any(p == payload for _, p in self.messages)

    def received(self, payloads: Container[bytes]) -> set[str]:
        """Topics of the messages received with one of ``payloads``."""
        with self._cond:
            return {t for t, p in self.messages if p in payloads}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the ACL table of docs/deployment.md, as the specification of the tests ------------
ACL_HEADING = "### Who may do what"
RESERVED = (  # the table's <reserved>, as docs/protocol.md lists them
    "service recorder classifier model windower gateway trainer workout dashboard homeassistant"
)


@dataclass(frozen=True)
class AclRow:
    """One row of the table: topic filters with ``<id>`` for the account's own name."""

    ports: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    refused: tuple[str, ...]


def _filters(cell: str) -> tuple[str, ...]:
    found = re.findall(r"`([^`]+)`", cell)
    out = []
    for f in found:
        names = RESERVED.split() if "<reserved>" in f else [None]
        out += [f.replace("<reserved>", n) if n else f for n in names]
    return tuple(out)


def acl_table(doc: Path = REPO / "docs" / "deployment.md") -> dict[str, AclRow]:
    """The table under "Who may do what", by account (``device``, ``anonymous``, names)."""
    text = doc.read_text()
    section = text[text.index(ACL_HEADING) :]
    rows: dict[str, AclRow] = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in {"account", "---"}:
            continue
        name = cells[0].strip("`")
        key = "device" if name.startswith("device") else name
        rows[key] = AclRow(cells[1], *(_filters(c) for c in cells[2:]))
    return rows


def expected(table: dict[str, AclRow], account: str, topic: str, op: str) -> bool:
    """Whether the table lets ``account`` (a name, a device id or ``anonymous``) ``op`` ``topic``.

    As Mosquitto checks an ACL: the account's own lines, refusals first, then the
    device patterns (with the account's name), which apply to every user name.
    """
    device = account in DEVICES
    row = table["device" if device else account]
    own = [f.replace("<id>", account) for f in getattr(row, op)]
    if any(mqtt.topic_matches_sub(f.replace("<id>", account), topic) for f in row.refused):
        return False
    if any(mqtt.topic_matches_sub(f, topic) for f in own):
        return True
    if device or account == "anonymous":
        return False
    patterns = [f.replace("<id>", account) for f in getattr(table["device"], op)]
    return any(mqtt.topic_matches_sub(f, topic) for f in patterns)


SAMPLE_TOPICS = [
    *(f"har/{d}/{kind}" for d in ("sim-1", "wrist-1", "ankle-2")
      for kind in ("imu", "window", "prediction", "status", "truth", "rep", "set", "workout")),
    *(f"har/service/{s}/status" for s in (*PASSWORDS, "intruder")),
    "har/model/spec",
    *(f"har/{s}/{k}" for s in ("classifier", "recorder", "trainer") for k in ("cmd", "reply")),
    "har/recorder/status", "har/trainer/status", "har/gateway/status", "har/dashboard/d1/reply",
    "har/monitor/imu", "har/monitor/status", "har/phone/imu", "har/phone/status",
    "sensor-logger", "sensor-logger/wrist-1", "sensor-logger/ankle-2", "sensor-logger/phone",
    "homeassistant/status", "homeassistant/sensor/wrist-1/config", "other/topic",
    "homeassistant/device/imuhar__har__wrist-1/config", "har/homeassistant/wrist-1/state",
    "har/homeassistant/wrist-1/availability", "har/homeassistant/wrist-1/event",
    "har/hass/imu", "har/hass/status", "har/hass/prediction", "sensor-logger/hass",
]  # fmt: skip


def write_mismatches(table: dict[str, AclRow], account: str, client: Client) -> list[str]:
    """Publish every sample topic as ``account``; where the broker and the table disagree."""
    bad = []
    for topic in SAMPLE_TOPICS:
        code = client.publish(topic, b"acl-test")
        want = expected(table, account, topic, "writes")
        if (code < 128) != want:
            bad.append(f"{account} {'may not' if want else 'may'} write {topic} (reason {code})")
    return bad


def read_mismatches(
    table: dict[str, AclRow], readers: dict[str, Client], writers: dict[str, Client]
) -> list[str]:
    """Every reader subscribes to ``#``; each sample topic is published once by an account the
    table lets write it; where what each reader got and the table disagree."""
    for client in readers.values():
        client.subscribe("#")
    sent: dict[bytes, str] = {}
    for topic in SAMPLE_TOPICS:
        writer = next((a for a in writers if expected(table, a, topic, "writes")), None)
        if writer is not None:
            payload = f"read-{topic}-{time.monotonic_ns()}".encode()
            assert writers[writer].publish(topic, payload) < 128, (writer, topic)
            sent[payload] = topic
    bad = []
    for account, client in readers.items():
        want = {t for t in sent.values() if expected(table, account, t, "reads")}
        client.wait(lambda c=client, w=want: w <= c.received(sent), 10)  # type: ignore[misc]
        time.sleep(0.3)  # let anything it should not get arrive too
        bad += [
            f"{account} {'read' if topic not in want else 'did not read'} {topic}"
            for topic in sorted(client.received(sent) ^ want)
        ]
    return bad
