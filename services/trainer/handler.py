"""The trainer's runtime handler: commands -> jobs, child events -> the retained status.

Commands (``train``, ``cancel``, ``status``, ``list``) are answered on the MQTT
v5 response topic, else on ``<root>/trainer/reply``. One job runs at a time; a
``train`` while one runs is refused (``busy``), not queued: a queued job would
train on sessions as they were when it was asked, and the dashboard shows one
progress bar. The retained ``<root>/trainer/status`` carries the running (or
last) job, republished every ``progress_interval`` while it runs and at once
when its phase changes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from imu_har.protocol import topics
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.trainer import (
    CancelJob,
    TrainCommand,
    TrainerReply,
    TrainerStatus,
    parse_trainer_command,
)
from imu_har.runtime.handler import each
from imu_har.runtime.inbox import Inbound
from imu_har.runtime.service import ServiceRuntime
from services.trainer.catalog import RefusedError, plan_job
from services.trainer.jobs import Job, JobBook, new_job_id
from services.trainer.models import list_artifacts
from services.trainer.runner import ChildRun
from services.trainer.settings import TrainerSettings

logger = logging.getLogger(__name__)


class TrainerHandler:
    """Runtime handler of ``har trainer`` (see the module docstring)."""

    def __init__(self, settings: TrainerSettings, runtime: ServiceRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.book = JobBook(settings.max_history)
        self.child: ChildRun | None = None
        self._result: dict[str, Any] | None = None
        self._error: str | None = None
        self._cmd_topic = topics.TRAINER_CMD.format(settings.topic_root)
        self._reply_topic = topics.TRAINER_REPLY.format(settings.topic_root)
        self._status_topic = topics.TRAINER_STATUS.format(settings.topic_root)
        self._last_status = float("-inf")

    def subscriptions(self) -> list[tuple[str, int]]:
        """The command topic."""
        return [(self._cmd_topic, 1)]

    def handle_batch(self, messages: list[Inbound]) -> None:
        """Answer every command (one bad command never stops the rest)."""
        each(self.runtime, messages, self._command)

    def _command(self, message: Inbound) -> None:
        action = ""
        try:
            command = parse_trainer_command(message.payload)
            action = command.action
            if isinstance(command, TrainCommand):
                data = self._train(command)
            elif isinstance(command, CancelJob):
                data = self._cancel(command.job)
            elif action == "status":
                data = self._status_data()
            else:
                data = self._list()
            reply = TrainerReply(ok=True, action=action, data=data)
        except PayloadError as exc:
            self.runtime.reject(exc.reason, f"command: {exc.args[0]}")
            reply = TrainerReply(ok=False, action=action, error=str(exc))
        except RefusedError as exc:
            self.runtime.reject(exc.reason, f"{action}: {exc}")
            reply = TrainerReply(ok=False, action=action, error=str(exc))
        except Exception as exc:  # a bug: answer, then let each() count and log it
            self.runtime.reply(
                message,
                TrainerReply(
                    ok=False, action=action, error=f"internal error: {exc!r}"
                ).to_payload(),
                self._reply_topic,
            )
            raise
        self.runtime.reply(message, reply.to_payload(), self._reply_topic)

    def _train(self, command: TrainCommand) -> dict[str, Any]:
        running = self.book.current
        if running is not None:
            raise RefusedError(
                "busy", f"job {running.id} is running: one job at a time (cancel it, or wait)"
            )
        plan = plan_job(command, self.settings)
        job = Job(new_job_id(time.time()), plan, time.monotonic())
        self.child = ChildRun(
            plan.to_json()
            | {
                "job": job.id,
                "data_dir": str(self.settings.data_dir),
                "models_dir": str(self.settings.models_dir),
                "threads": self.settings.worker_threads,
                "nice": self.settings.worker_nice,
            }
        )
        self._result = self._error = None
        self.book.start(job)
        logger.info("job %s: training %r on %d sessions", job.id, plan.name, len(plan.sessions))
        self._publish_status(force=True)
        return {
            "job": job.id,
            "sessions": [m["session"] for m in plan.sessions],
            "grouping": plan.grouping,
            "folds": plan.folds,
            "params": plan.params,
        }

    def _cancel(self, job_id: str) -> dict[str, Any]:
        job = self.book.find(job_id)
        if job is None:
            raise RefusedError("unknown_job", f"no job {job_id!r} (running or remembered)")
        if job is not self.book.current:
            raise RefusedError("not_running", f"job {job_id} is not running: it is {job.state}")
        self._stop("cancelled", "cancelled by command")
        return {"job": job_id, "state": "cancelled"}

    def _stop(self, state: str, error: str | None) -> None:
        """End the running job's process (nothing of it is kept) and file the job."""
        job = self.book.current
        if self.child is not None:
            self.child.cancel()
            self._count_bad_lines()
        self.child = None
        if job is not None:
            job.finish(state, time.monotonic(), error)
            self.book.end()
            logger.info("job %s %s: %s", job.id, state, error)
        self._publish_status(force=True)

    def tick(self, now: float) -> None:
        """Fold in the child's events; file the job when it ends; publish when due."""
        job, child = self.book.current, self.child
        if job is not None and child is not None:
            mono = time.monotonic()
            changed = False
            for event in child.drain():
                kind = event.get("kind")
                if kind == "result":
                    self._result = event
                elif kind == "error":
                    self._error = str(event.get("error"))[:2000]
                else:
                    changed |= job.apply(event, mono)
            code = child.exit_code()
            if code is not None:
                self._finished(job, child, code)
                return
            if mono - job.started_at > self.settings.max_job_seconds:
                limit = self.settings.max_job_seconds
                self._stop("failed", f"time limit: ran longer than {limit:g} s")
                return
            self._publish_status(force=changed)
        else:
            self._publish_status()

    def _finished(self, job: Job, child: ChildRun, code: int) -> None:
        for event in child.drain():  # what came in with the exit
            if event.get("kind") == "result":
                self._result = event
            elif event.get("kind") == "error":
                self._error = str(event.get("error"))[:2000]
        child.cleanup()
        self._count_bad_lines()
        self.child = None
        if code == 0 and self._result is not None:
            result = {k: v for k, v in self._result.items() if k != "kind"}
            job.finish("done", time.monotonic(), result=result | {"folds": job.fold_results})
        else:
            error = self._error or f"training process ended with status {code}"
            job.finish("failed", time.monotonic(), error)
            self.runtime.error(f"job {job.id} failed: {error}")
        self.book.end()
        logger.info("job %s %s", job.id, job.state)
        self._publish_status(force=True)

    def _count_bad_lines(self) -> None:
        if self.child is not None and self.child.bad_lines:
            self.runtime.reject("bad_worker_output", f"{self.child.bad_lines} lines not JSON")

    def _status_data(self) -> dict[str, Any]:
        job = self.book.latest()
        progress = job.progress(time.monotonic(), time.time()) if job else None
        return {"busy": self.book.current is not None, "job": progress}

    def _list(self) -> dict[str, Any]:
        mono, wall = time.monotonic(), time.time()
        jobs = [self.book.current, *reversed(self.book.history)]
        return {
            "jobs": [j.summary(mono, wall) for j in jobs if j is not None],
            "models": list_artifacts(self.settings.models_dir, self.settings.list_limit),
        }

    def _publish_status(self, force: bool = False, state: str = "online") -> None:
        mono = time.monotonic()
        running = self.book.current is not None
        interval = self.settings.progress_interval if running else self.settings.status_interval
        if not force and mono - self._last_status < interval:
            return
        self._last_status = mono
        job = self.book.latest()
        status = TrainerStatus(
            state=state,
            busy=running,
            job=job.progress(mono, time.time()) if job else None,
            models_dir=str(self.settings.models_dir),
            data_dir=str(self.settings.data_dir),
            updated_at=time.time(),
        )
        self.runtime.publish(self._status_topic, status.to_payload(), qos=1, retain=True)

    def details(self) -> dict[str, Any]:
        """The running job and the directories, for the service status."""
        job = self.book.current
        return {
            "job": job.id if job else None,
            "phase": job.phase if job else None,
            "pid": self.child.pid if self.child else None,
            "jobs_remembered": len(self.book.history),
            "data_dir": str(self.settings.data_dir),
            "models_dir": str(self.settings.models_dir),
        }

    def close(self) -> None:
        """A running job is cancelled (its process ended, its partial artifact removed)."""
        if self.book.current is not None:
            self._stop("cancelled", "the trainer stopped")
        self._publish_status(force=True, state="offline")
