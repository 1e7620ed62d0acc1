"""The training process of one job, seen from the service: start, read events, cancel.

The job runs as ``python -m services.trainer.worker`` in its own process group
(TensorFlow stays out of the service). A reader thread turns its standard
output into events on a queue the service drains on its own thread; a line
that is not a JSON object, or longer than :data:`MAX_LINE`, is dropped and
counted. :meth:`ChildRun.cancel` ends the whole process group (TERM, then KILL)
and removes the job's partial artifact directory, so nothing half-written
remains.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from services.trainer.worker import PARTIAL_PREFIX, partial_dir

logger = logging.getLogger(__name__)
MAX_LINE = 1024 * 1024
TERM_GRACE = 5.0  # s between SIGTERM and SIGKILL


class ChildRun:
    """One running training process and the events it has sent."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job_id = str(job["job"])
        self.models_dir = Path(job["models_dir"])
        self.events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.bad_lines = 0
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.trainer.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: cancel reaches every child
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self.proc.stdout,), name=f"trainer-{self.job_id}", daemon=True
        )
        self._reader.start()
        try:
            self.proc.stdin.write(json.dumps(job).encode())
            self.proc.stdin.close()
        except OSError:  # it died at once: its exit status tells
            pass

    @property
    def pid(self) -> int:
        """The process id (its process group id too)."""
        return self.proc.pid

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            line = stream.readline(MAX_LINE)
            if not line:
                return
            try:
                event = json.loads(line) if line.endswith(b"\n") else None
            except (ValueError, UnicodeDecodeError, RecursionError):
                event = None
            if isinstance(event, dict):
                self.events.put(event)
            else:
                self.bad_lines += 1
                while line and not line.endswith(b"\n"):  # skip the rest of a long line
                    line = stream.readline(MAX_LINE)

    def drain(self) -> list[dict[str, Any]]:
        """The events received since the last call."""
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def exit_code(self) -> int | None:
        """None while running; else the exit status, once every event has been read."""
        code = self.proc.poll()
        if code is None:
            return None
        self._reader.join(timeout=5.0)
        return code

    def cancel(self) -> None:
        """End the process group (TERM, then KILL) and remove the partial artifact."""
        for sig, wait in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, 30.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.cleanup()

    def cleanup(self) -> None:
        """Remove what an unfinished job left in the models directory."""
        shutil.rmtree(partial_dir(self.models_dir, self.job_id), ignore_errors=True)


def remove_stale_partials(models_dir: Path) -> list[str]:
    """Partial artifacts left by a service that died mid-job (at start-up: none is ours)."""
    if not models_dir.is_dir():
        return []
    stale = [p for p in models_dir.iterdir() if p.name.startswith(PARTIAL_PREFIX)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in stale]
