"""Pure supervision logic for ``har up``: what to run, restart policy, service state.

Nothing here starts processes or talks to a broker: :func:`plan` turns the
command line into the services' ``har`` arguments, and :class:`Supervisor` is
told what happened (``started``, ``exited``, ``online``) with explicit times and
answers what to do next (``due`` restarts), so the policy is testable without
processes (:mod:`imu_har.ops.preflight` says why a command line must not start
at all). :mod:`imu_har.ops.launcher` is the I/O shell around it.
"""

from __future__ import annotations

import argparse
import math
import shlex
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
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


# -- what to run ------------------------------------------------------------------
SERVICES = ("gateway", "windower", "classifier", "workout", "recorder", "trainer", "dashboard")
# Started only when asked for (har up --<name>), after the recorder.
OPTIONAL_SERVICES = {"homeassistant": "the Home Assistant bridge (docs/homeassistant.md)"}
# Names a service may use on its status topic besides its subcommand name.
STATUS_ALIASES = {"ble_gateway": "gateway", "ble-gateway": "gateway"}
DEFAULT_MODEL = Path("models") / "default"


@dataclass
class ServiceSpec:
    """How to run one service: its ``har`` arguments and how to see it online."""

    name: str
    args: list[str]
    health_url: str | None = None


def build_parser() -> argparse.ArgumentParser:
    """The ``har up`` command line."""
    p = argparse.ArgumentParser(
        prog="har up",
        description="Start broker (if none configured) and every service, supervised.",
        epilog="Broker settings come from HAR_MQTT_* in the environment, as for every service.",
    )
    p.add_argument("--devices", type=int, default=3, help="simulated wearables (default 3)")
    p.add_argument(
        "--source", choices=("sim", "ble", "replay", "phone"), default="sim", help="wearables"
    )
    p.add_argument("--phone", action="store_true", help="phones as wearables (--source phone)")
    p.add_argument(
        "--sim-style",
        choices=("steady", "realistic"),
        help="simulated sets: the gateway's steady default, or realistic (set-up, uneven reps, "
        "pauses, fatigue)",
    )
    p.add_argument("--model", type=Path, help=f"classifier model dir (default {DEFAULT_MODEL})")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="recordings (./data)")
    p.add_argument("--dashboard-port", type=int, default=8501, help="dashboard HTTP port")
    p.add_argument(
        "--dashboard-address",
        default="127.0.0.1",
        help="0.0.0.0 for the network; beyond loopback the dashboard needs a login: "
        "--dashboard-args '--auth-file FILE' or HAR_AUTH_FILE (or --allow-anonymous)",
    )
    p.add_argument("--mqtt-host", help="use this broker instead of a private Mosquitto")
    p.add_argument("--mqtt-port", type=int, help="broker port (private broker: a free port)")
    p.add_argument(
        "--topic-root", help="root of every topic, for every service (default: HAR_TOPIC_ROOT, har)"
    )
    for name in SERVICES:
        p.add_argument(f"--no-{name}", action="store_true", help=f"do not start the {name}")
        p.add_argument(f"--{name}-args", default="", metavar="ARGS", help=f"extra {name} flags")
    for name, what in OPTIONAL_SERVICES.items():
        p.add_argument(f"--{name}", action="store_true", help=f"also start {what}")
        p.add_argument(f"--{name}-args", default="", metavar="ARGS", help=f"extra {name} flags")
    p.add_argument("--status-file", type=Path, help="keep a JSON file of service states/PIDs")
    p.add_argument("--startup-timeout", type=float, default=90.0, help="warn after (s)")
    p.add_argument("--stop-timeout", type=float, default=10.0, help="SIGKILL after (s)")
    p.add_argument("--restart-delay", type=float, default=1.0, help="first restart backoff (s)")
    p.add_argument("--max-restart-delay", type=float, default=30.0, help="longest backoff (s)")
    return p


def resolve_model(given: Path | None) -> Path | None:
    """The model directory to serve: ``given``, else models/default here or in the repo."""
    if given is not None:
        return given
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / DEFAULT_MODEL / "spec.json").is_file():
            return base / DEFAULT_MODEL
    return None


def plan(args: argparse.Namespace, model: Path | None) -> list[ServiceSpec]:
    """The services to run, in start order, with their ``har`` arguments."""
    specs = []
    if not args.no_gateway:
        source = "phone" if args.phone else args.source
        gateway = ["--source", source]
        gateway += ["--devices", str(args.devices)] if source == "sim" else []
        gateway += ["--sim-style", args.sim_style] if source == "sim" and args.sim_style else []
        # the phone token and certificate live where the dashboard looks for them
        gateway += ["--phone-dir", str(args.data_dir / "phone")] if source == "phone" else []
        specs.append(ServiceSpec("gateway", gateway))
    if not args.no_windower:
        specs.append(ServiceSpec("windower", []))
    if not args.no_classifier and model is not None:
        specs.append(ServiceSpec("classifier", ["--model", str(model)]))
    if not args.no_workout:  # light (docs/workout.md): sets and reps for the dashboard
        specs.append(ServiceSpec("workout", []))
    if not args.no_recorder:
        specs.append(ServiceSpec("recorder", ["--data-dir", str(args.data_dir)]))
    # The trainer writes where the classifier may reload from: its --model-root defaults to
    # the served model's parent (models/), so Activate on the dashboard's Models page works.
    models_dir = model.parent if model is not None else DEFAULT_MODEL.parent
    if not args.no_trainer:
        trainer = ["--data-dir", str(args.data_dir), "--models-dir", str(models_dir)]
        specs.append(ServiceSpec("trainer", trainer))
    specs += [ServiceSpec(name, []) for name in OPTIONAL_SERVICES if getattr(args, name)]
    if not args.no_dashboard:
        port, address = args.dashboard_port, args.dashboard_address
        dash = ["--port", str(port), "--address", address, "--data-dir", str(args.data_dir)]
        dash += ["--models-dir", str(models_dir)]
        host = "127.0.0.1" if address in {"0.0.0.0", "::"} else address
        specs.append(ServiceSpec("dashboard", dash, f"http://{host}:{port}/_stcore/health"))
    for spec in specs:
        spec.args += shlex.split(getattr(args, f"{spec.name}_args"))
    return specs
