"""Subprocesses of the tests: waiting until one serves HTTP, stopping one for good."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable


def wait_http(url: str, log: Callable[[], str], timeout: float = 60.0) -> None:
    """Return once ``url`` answers 200; if it never does, AssertionError with ``log()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"dashboard did not answer at {url}:\n{log()}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM ``process``, SIGKILL it if it has not exited after ``timeout`` seconds; reap it."""
    process.terminate()
    wait_stopped(process, timeout)


def wait_stopped(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Wait ``timeout`` seconds for ``process`` to exit, then SIGKILL it; reap it."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
