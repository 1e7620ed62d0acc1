"""Pure supervision logic for ``har up``: restart policy, backoff and service state.

Nothing here starts processes or talks to a broker: :class:`Supervisor` is told
what happened (``started``, ``exited``, ``online``) with explicit times and
answers what to do next (``due`` restarts), so the policy is testable without
processes. :mod:`imu_har.launcher` is the I/O shell around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """Life cycle of one supervised service."""

    PENDING = "pending"  # not started yet
    STARTING = "starting"  # process running, not reported online yet
    ONLINE = "online"  # process running and reported online
    BACKOFF = "backoff"  # exited; waiting to be restarted
    FAILED = "failed"  # exited too often; given up
    STOPPED = "stopped"  # stopped on purpose


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff between restarts of a crashing service.

    The n-th consecutive failure waits ``initial * factor ** (n - 1)`` seconds,
    at most ``max_delay``. A process that ran at least ``stable_after`` seconds
    counts as healthy again (the failure streak starts over). ``max_failures``
    consecutive failures give up on the service (``None``: never give up).
    """

    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    stable_after: float = 30.0
    max_failures: int | None = None

    def __post_init__(self) -> None:
        if not (self.initial >= 0 and self.factor >= 1 and self.max_delay >= self.initial):
            raise ValueError("need initial >= 0, factor >= 1 and max_delay >= initial")
        if self.max_failures is not None and self.max_failures < 1:
            raise ValueError("max_failures must be at least 1 (or None)")

    def delay(self, failures: int) -> float:
        """Seconds to wait before restarting after ``failures`` consecutive failures."""
        if failures <= 0:
            return 0.0
        exponent = min(failures - 1, 64)  # large streaks only ever reach max_delay
        return float(min(self.max_delay, self.initial * math.pow(self.factor, exponent)))

    def gives_up(self, failures: int) -> bool:
        """True when ``failures`` consecutive failures are too many."""
        return self.max_failures is not None and failures >= self.max_failures


@dataclass
class ServiceState:
    """What the supervisor knows about one service."""

    name: str
    state: State = State.PENDING
    pid: int | None = None
    started_at: float | None = None  # when the current process was started
    online_at: float | None = None
    restarts: int = 0  # restarts after a crash, since launch
    failures: int = 0  # consecutive failures (reset once a run is stable)
    next_start: float | None = None  # when a BACKOFF service is due
    last_exit: int | None = None

    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly view for the status file and logs."""
        return {
            "name": self.name,
            "state": str(self.state),
            "pid": self.pid,
            "restarts": self.restarts,
            "failures": self.failures,
            "last_exit": self.last_exit,
            "started_at": self.started_at,
            "online_at": self.online_at,
        }


@dataclass
class Supervisor:
    """Decides restarts for a set of named services; all times are passed in."""

    names: list[str]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    stopping: bool = False

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise ValueError("service names must be unique")
        self.services: dict[str, ServiceState] = {n: ServiceState(n) for n in self.names}

    def __getitem__(self, name: str) -> ServiceState:
        return self.services[name]

    def started(self, name: str, pid: int, now: float) -> None:
        """A process for ``name`` was started."""
        service = self.services[name]
        service.state, service.pid, service.started_at = State.STARTING, pid, now
        service.online_at = service.next_start = None

    def online(self, name: str, now: float, started_at: float | None = None) -> bool:
        """``name`` reported online; True when this is news (first report of this process).

        ``started_at`` is the start time the service itself reports: a report
        older than the current process (a retained message left by an earlier
        process) is ignored.
        """
        service = self.services[name]
        if service.state is not State.STARTING:
            return False
        stale = started_at is not None and started_at < (service.started_at or 0.0) - 1.0
        if stale:  # a retained report of an earlier process
            return False
        service.state, service.online_at = State.ONLINE, now
        return True

    def exited(self, name: str, code: int | None, now: float) -> float | None:
        """The process of ``name`` exited; returns the restart delay, or None if not restarting."""
        service = self.services[name]
        service.pid, service.last_exit = None, code
        if self.stopping or service.state is State.STOPPED:
            service.state = State.STOPPED
            return None
        ran = now - service.started_at if service.started_at is not None else 0.0
        if ran >= self.policy.stable_after:
            service.failures = 0
        service.failures += 1
        if self.policy.gives_up(service.failures):
            service.state, service.next_start = State.FAILED, None
            return None
        delay = self.policy.delay(service.failures)
        service.state, service.next_start = State.BACKOFF, now + delay
        return delay

    def due(self, now: float) -> list[str]:
        """Services to (re)start now: pending ones and those whose backoff has passed."""
        if self.stopping:
            return []
        due = []
        for name in self.names:
            service = self.services[name]
            backoff_over = service.state is State.BACKOFF and (service.next_start or 0.0) <= now
            if service.state is State.PENDING or backoff_over:
                due.append(name)
        return due

    def restarting(self, name: str) -> None:
        """Count a restart of ``name`` (call before starting a BACKOFF service again)."""
        if self.services[name].state is State.BACKOFF:
            self.services[name].restarts += 1

    def stop_all(self) -> None:
        """From now on nothing is restarted; running services are expected to exit."""
        self.stopping = True
        for service in self.services.values():
            if service.pid is None:
                service.state = State.STOPPED

    def waiting_for(self) -> list[str]:
        """Services that run but have not reported online yet."""
        return [n for n in self.names if self.services[n].state is State.STARTING]

    def all_online(self) -> bool:
        """True when every service reported online."""
        return all(s.state is State.ONLINE for s in self.services.values())

    def snapshot(self) -> list[dict[str, Any]]:
        """Every service's :meth:`ServiceState.snapshot`, in start order."""
        return [self.services[n].snapshot() for n in self.names]
