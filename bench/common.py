"""Helpers shared by the benchmarks: machine description, process sampling, output."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psutil

T = TypeVar("T")


def machine() -> str:
    """One line describing this machine, for docs/benchmarks.md."""
    mem = psutil.virtual_memory().total / 2**30
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


@dataclass
class CpuSample:
    """CPU seconds and RSS of one process between two points in time."""

    process: psutil.Process
    cpu0: float = 0.0
    wall0: float = 0.0

    def start(self) -> None:
        times = self.process.cpu_times()
        self.cpu0, self.wall0 = times.user + times.system, time.monotonic()

    def stop(self) -> dict[str, float]:
        times = self.process.cpu_times()
        wall = time.monotonic() - self.wall0
        return {
            "cpu_percent": 100 * (times.user + times.system - self.cpu0) / wall,
            "rss_mb": self.process.memory_info().rss / 2**20,
        }


def measure_window(
    pids: tuple[int, int], snapshot: Callable[[], T], seconds: float
) -> tuple[T, T, float, dict[str, float], dict[str, float]]:
    """``snapshot()`` before and after ``seconds``, the wall time between, and the CPU of
    the two processes ``pids`` (a service, the broker) over it (:class:`CpuSample`)."""
    service_cpu, broker_cpu = (CpuSample(psutil.Process(pid)) for pid in pids)
    service_cpu.start()
    broker_cpu.start()
    before = snapshot()
    t0 = time.monotonic()
    time.sleep(seconds)
    after = snapshot()
    wall = time.monotonic() - t0
    return before, after, wall, service_cpu.stop(), broker_cpu.stop()


def report(name: str, rows: list[dict[str, object]]) -> None:
    """Print rows as a table and as one JSON line (for collecting results)."""
    print(f"\n== {name} — {machine()}")
    if rows:
        keys = list(rows[0])
        print(" | ".join(keys))
        for row in rows:
            print(
                " | ".join(
                    f"{row[k]:.1f}" if isinstance(row[k], float) else str(row[k]) for k in keys
                )
            )
    print("JSON " + json.dumps({"bench": name, "machine": machine(), "rows": rows}))
