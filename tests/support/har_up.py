"""``har up`` run as a user runs it, for the tests: a subprocess and its output, line by line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HAR = [sys.executable, "-m", "imu_har.ops.cli"]


def clean_env() -> dict[str, str]:
    """This process's environment without any ``HAR_`` setting (the defaults apply)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HAR_")}


class Output:
    """Collects a process's stdout lines on a thread; waits for a line to appear."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        """The last line containing ``text``, once there is one (AssertionError at the timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [line for line in self.lines if text in line]
                if found:
                    return found[-1]
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"no {text!r} in {timeout}s; last lines:\n{tail}")

    def count(self, text: str) -> int:
        """How many lines so far contain ``text``."""
        with self._cond:
            return sum(text in line for line in self.lines)


def start_har_up(
    args: list[str], cwd: Path, new_session: bool = True
) -> tuple[subprocess.Popen[str], Output]:
    """``har up ARGS`` in ``cwd`` without ``HAR_`` settings, and its output being collected.

    ``new_session``: its own process group (as in a terminal), to be signalled as a whole.
    """
    proc = subprocess.Popen(
        [*HAR, "up", *args],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
    )
    return proc, Output(proc)
