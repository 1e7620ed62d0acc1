"""Start and stop a private Mosquitto broker on a free loopback port.

Used by the test fixture, the benchmarks and ``har up`` when no broker is
configured. The broker runs from the ``mosquitto`` binary on PATH with a
temporary config and persistence directory, so it can be restarted on the same
port with its persisted sessions (for durability tests). It is open to
anonymous clients unless given accounts: :func:`private_broker` (``har up``)
adds a password file and the ACL of :mod:`imu_har.ops.acl`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imu_har.ops.acl import render_acl
from imu_har.protocol.topics import DEFAULT_ROOT, validate_root

logger = logging.getLogger(__name__)
# Mosquitto's PBKDF2-SHA512 hash (``$7$``), as mosquitto_passwd 2.0 writes it.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str:
    """Path of the mosquitto binary, or a RuntimeError saying how to install it."""
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("mosquitto not found: install it (apt-get install mosquitto)")


class MosquittoBroker:
    """A private broker: ``start()``, ``stop()``, ``restart()``; also a context manager."""

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        host: str = "127.0.0.1",
        extra_config: str = "",
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="har-mosquitto-"))
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"

    def _write_config(self) -> Path:
        persistence = self.workdir / "data"
        persistence.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} {self.host}\n"
            # As root, mosquitto would drop to the 'mosquitto' user, which cannot write
            # our temporary persistence directory: restarts would then lose sessions.
            + ("user root\n" if os.geteuid() == 0 else "")
            + "allow_anonymous true\n"
            "set_tcp_nodelay true\n"
            "persistence true\n"
            f"persistence_location {persistence}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 1000\n"
            "message_size_limit 16777216\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\n" + self.extra_config
        )
        return config

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Start the broker and wait until it accepts connections."""
        config = self._write_config()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [find_mosquitto(), "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group (a terminal's Ctrl-C is for our owner, who stops us last), same
            # session: a new session would be a new scheduler autogroup, which at 1,000
            # wearables raised the pipeline's p99 from about 87 to 100-250 ms.
            process_group=0,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} in {timeout}s")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, so it saves its persistence file)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, optionally stay down a while, and start again on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def cleanup(self) -> None:
        """Stop and remove the temporary directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.cleanup()


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """A password-file hash Mosquitto 2.0 accepts: ``$7$<iterations>$<salt>$<key>``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    encoded = (base64.b64encode(x).decode("ascii") for x in (salt, key))
    return f"$7${PBKDF2_ITERATIONS}$" + "$".join(encoded)


@dataclass(frozen=True)
class BrokerAccess:
    """Random passwords for some accounts, written as a password file and an ACL."""

    passwords: dict[str, str]

    @classmethod
    def generate(cls, names: Iterable[str]) -> BrokerAccess:
        """A fresh random password for each account name."""
        return cls({name: secrets.token_urlsafe(24) for name in names})

    def write(self, directory: Path, root: str, anonymous: bool = True) -> str:
        """Write ``passwd`` and ``acl`` (owner-only) into ``directory``; the broker config lines."""
        passwd, acl = directory / "passwd", directory / "acl"
        lines = [f"{name}:{mosquitto_hash(pw)}" for name, pw in self.passwords.items()]
        for path, text in ((passwd, "\n".join(lines) + "\n"), (acl, render_acl(root, anonymous))):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(text)
        return f"password_file {passwd}\nacl_file {acl}\n"

    def env(self, name: str) -> dict[str, str]:
        """``HAR_MQTT_USERNAME``/``HAR_MQTT_PASSWORD`` for a child running as ``name``."""
        return {"HAR_MQTT_USERNAME": name, "HAR_MQTT_PASSWORD": self.passwords[name]}


def private_broker(
    names: Iterable[str], root: str = DEFAULT_ROOT, port: int | None = None
) -> tuple[MosquittoBroker, BrokerAccess]:
    """``har up``'s broker, not started: loopback, an account with a random password for
    each of ``names`` (and ``monitor``, for the launcher's status watcher), the
    deployment's ACL, and anonymous clients limited to :func:`imu_har.ops.acl.anonymous_rules`.
    """
    access = BrokerAccess.generate([*names, "monitor"])
    broker = MosquittoBroker(port=port)
    broker.extra_config = access.write(broker.workdir, validate_root(root))
    return broker, access
