"""Start and stop a private Mosquitto broker on a free loopback port.

Used by the test fixture, the benchmarks and ``har up`` when no broker is
configured. The broker runs from the ``mosquitto`` binary on PATH with a
temporary config and persistence directory, so it can be restarted on the same
port with its persisted sessions (for durability tests).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)


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
