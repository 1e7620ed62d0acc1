"""The child processes of ``har up``: how they start, print, and die with the launcher.

- :data:`CHILD_SHIM` runs in each service's process before it execs ``har
  <service>``: on Linux the child is SIGTERMed when the launcher dies, even
  when the launcher is SIGKILLed.
- :data:`BROKER_GUARD` is a sleeping process that stops the private broker
  when the launcher dies.
- :func:`say` prints a line prefixed with its source; :func:`pump` copies a
  child's output through it.
- :func:`killpg` signals a child's process group (it may be gone already);
  :func:`http_ok` is the dashboard's health check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.request

# Run in the child before exec: die with the launcher even if it is SIGKILLed (Linux).
CHILD_SHIM = (
    "import ctypes, os, signal, sys\n"
    "try: ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "except Exception: pass\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'imu_har.ops.cli', *sys.argv[2:]])\n"
)
# A sleeping guard that stops the private broker (argv[2]) when the launcher dies.
BROKER_GUARD = (
    "import ctypes, os, signal, sys\n"
    "def bye(*_):\n"
    "    try: os.kill(int(sys.argv[2]), signal.SIGTERM)\n"
    "    finally: sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"  # Ctrl-C is the launcher's to handle
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "if os.getppid() != int(sys.argv[1]): bye()\n"
    "while True: signal.pause()\n"
)
_out_lock = threading.Lock()


def say(name: str, text: str) -> None:
    """Print one line prefixed with ``name |`` (thread-safe)."""
    with _out_lock:
        sys.stdout.write(f"{name:<10} | {text.rstrip()}\n")
        sys.stdout.flush()


def pump(name: str, proc: subprocess.Popen[bytes]) -> None:
    """Print each line of ``proc``'s output prefixed with ``name`` until it closes."""
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        say(name, line.decode(errors="replace"))


def killpg(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; nothing if it is gone (or not ours)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except OSError:
        return False
