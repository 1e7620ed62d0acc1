"""Job state (pure): progress events from the training process -> what the status shows.

A :class:`Job` folds the structured events of :mod:`training.fit` (phase,
fold, epoch, loss, accuracy; the child sends them as JSON lines) into one
:class:`~imu_har.protocol.trainer.JobProgress`, with the time left estimated
from the epochs done and to do (every fold and the final fit train the same
number of epochs). :class:`JobBook` keeps the running job and a bounded
history of finished ones.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from imu_har.protocol.trainer import JobProgress
from services.trainer.catalog import Plan

PHASES = ("starting", "loading", "cv", "fit", "export")


def new_job_id(now: float) -> str:
    """``j<UTC time>-<6 hex>``: unique, sortable, a safe name."""
    return f"j{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{secrets.token_hex(3)}"


@dataclass
class Job:
    """One training job and where it is."""

    id: str
    plan: Plan
    started_at: float
    state: str = "running"
    phase: str = "starting"
    fold: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    accuracy: float | None = None
    finished_at: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    fold_results: list[dict[str, Any]] = field(default_factory=list)
    _work_start: float | None = None  # monotonic time of the first epoch's start

    def apply(self, event: dict[str, Any], now: float) -> bool:
        """Fold one event in; True when the phase changed (worth publishing at once)."""
        kind = event.get("kind")
        before = self.phase
        phase = event.get("phase")
        if isinstance(phase, str) and phase in PHASES:
            self.phase = phase
        if self._work_start is None and self.phase in ("cv", "fit"):
            self._work_start = now
        if isinstance(event.get("fold"), int):
            self.fold = event["fold"]
        if kind == "epoch":
            self.epoch, self.epochs = _int(event.get("epoch")), _int(event.get("epochs"))
            self.loss, self.accuracy = _num(event.get("loss")), _num(event.get("accuracy"))
        elif kind == "fold_end" and len(self.fold_results) < self.plan.folds:
            keep = ("fold", "test_groups", "accuracy", "macro_f1")
            self.fold_results.append({k: event.get(k) for k in keep})
        elif kind in ("phase", "fold_start"):  # a new fit: the last one's epoch is not its own
            self.epoch = self.loss = self.accuracy = None
            if self.phase == "fit":
                self.fold = None
        return self.phase != before

    def finish(self, state: str, now: float, error: str | None = None, result: Any = None) -> None:
        """The job ended: ``done`` (with its result), ``failed`` or ``cancelled``."""
        self.state, self.finished_at, self.error = state, now, error
        self.phase = state if state != "done" else "done"
        if isinstance(result, dict):
            self.result = result

    def eta(self, now: float) -> float | None:
        """Seconds left, from the epochs done so far; None before the first epoch."""
        if self.state != "running" or self._work_start is None or not self.epochs or not self.epoch:
            return None
        total = self.epochs * (self.plan.folds + 1)
        done = self.epoch + self.epochs * (
            self.plan.folds if self.phase != "cv" else (self.fold or 1) - 1
        )
        if self.phase not in ("cv", "fit") or done <= 0:
            return None
        return max(0.0, (now - self._work_start) / done * (total - done))

    def progress(self, now: float, wall: float) -> JobProgress:
        """The status view; ``now`` monotonic (elapsed, eta), ``wall`` Unix time."""
        end = self.finished_at if self.finished_at is not None else now
        return JobProgress(
            job=self.id,
            name=self.plan.name,
            state=self.state,
            phase=self.phase,
            fold=self.fold,
            folds=self.plan.folds,
            epoch=self.epoch,
            epochs=self.epochs,
            loss=self.loss,
            accuracy=self.accuracy,
            elapsed=max(0.0, end - self.started_at),
            eta=self.eta(now),
            started_at=wall - (now - self.started_at),
            finished_at=None if self.finished_at is None else wall - (now - self.finished_at),
            sessions=len(self.plan.sessions),
            grouping=self.plan.grouping,
            error=self.error,
            result=self.result,
        )

    def summary(self, now: float, wall: float) -> dict[str, Any]:
        """One line of the 'list' reply (the fold results ride in ``result``)."""
        return self.progress(now, wall).model_dump(exclude={"result"}) | {
            "artifact": (self.result or {}).get("artifact"),
            "score": (self.result or {}).get("score"),
        }


class JobBook:
    """The running job and the last ``max_history`` finished ones."""

    def __init__(self, max_history: int) -> None:
        self.current: Job | None = None
        self.history: deque[Job] = deque(maxlen=max_history)

    def start(self, job: Job) -> None:
        """``job`` is running now."""
        assert self.current is None, "one job at a time"
        self.current = job

    def end(self) -> Job | None:
        """Move the running job into the history."""
        job, self.current = self.current, None
        if job is not None:
            self.history.append(job)
        return job

    def latest(self) -> Job | None:
        """The running job, else the last finished one."""
        return self.current or (self.history[-1] if self.history else None)

    def find(self, job_id: str) -> Job | None:
        """A job by id (running or remembered)."""
        jobs = [self.current, *self.history]
        return next((j for j in jobs if j is not None and j.id == job_id), None)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
