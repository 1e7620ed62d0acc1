"""A service's CPU priority: the services with a loose latency budget give way.

Predictions must arrive within 100 ms (p99); a repetition event within a second;
the recorder only has to lose nothing. When the CPU is short, the kernel should
run the windower and the classifier first. ``--cpu-nice N`` (``cpu_nice``)
lowers this process' priority by N at start, before the service starts its
threads (a Linux thread inherits the value of the one that creates it):

- every thread's nice value (numpy's BLAS threads exist from the import on):
  this process against the others of its session (the processes a shell or a
  benchmark starts);
- and, when the process leads its own session, as ``har up`` starts every
  service, its autogroup's nice value (``/proc/self/autogroup``): with
  autogrouping on, the kernel first shares the CPU between sessions, so a
  plain nice value would only count against the service's own threads.

In a container the kernel shares the CPU between containers first: Docker
Compose gives the same services a lower ``cpu_shares`` (docker-compose.yml).

Measured with ``bench.bench_e2e`` at 1,000 wearables on two cores, 2026-12-05:
see docs/benchmarks.md (End to end: "Events in one write, priorities by
latency budget").
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)
AUTOGROUP = Path("/proc/self/autogroup")
TASKS = Path("/proc/self/task")


def lower_priority(nice: int, autogroup: Path = AUTOGROUP) -> int:
    """Lower this process' CPU priority by ``nice`` (0: leave it); returns its new nice
    value. The autogroup is changed only by a session leader (its own group); a kernel
    without autogroups, or one that refuses, leaves the process nice value alone."""
    if nice <= 0:
        return os.nice(0)
    value = min(os.nice(0) + nice, 19)
    for thread in _threads():  # numpy's BLAS threads were started at import
        try:
            os.setpriority(os.PRIO_PROCESS, thread, value)
        except ProcessLookupError:  # it ended meanwhile
            continue
    if os.getsid(0) == os.getpid() and autogroup.exists():
        try:
            autogroup.write_text(f"{value}\n")
        except OSError as exc:
            logger.info("autogroup nice value not set (%s): process nice %d only", exc, value)
    logger.info("CPU priority lowered: nice %d", value)
    return value


def _threads() -> list[int]:
    """This process' threads (Linux: their ids), else the process alone (0)."""
    if not TASKS.is_dir():
        return [0]
    return [int(task.name) for task in TASKS.iterdir()]
