"""``har up``: start the whole system locally as supervised child processes.

Starts a private Mosquitto when no broker is configured (no ``--mqtt-host`` and
no ``HAR_MQTT_HOST``), then gateway, windower, classifier, workout, recorder,
trainer (and, with ``--homeassistant``, the Home Assistant bridge) and dashboard. Each child's
output is prefixed with its name (:mod:`imu_har.ops.processes`); a service counts
as online when it publishes its retained ``<root>/service/<name>/status`` with
``state=online`` (the dashboard: when its HTTP health endpoint answers). A crashed service is
restarted with exponential backoff (:mod:`imu_har.ops.supervisor`);
Ctrl-C or SIGTERM stops everything: SIGTERM to each child's process group, a
grace period, SIGKILL, then the broker. A command line that cannot work (an
invalid topic root, a dashboard beyond loopback without a login) stops with one
line before anything starts (:mod:`imu_har.ops.preflight`).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from imu_har.ops.broker import BrokerAccess, MosquittoBroker, free_port, private_broker
from imu_har.ops.preflight import refusal
from imu_har.ops.processes import BROKER_GUARD, CHILD_SHIM, http_ok, killpg, pump, say
from imu_har.ops.supervisor import (
    DEFAULT_MODEL,
    STATUS_ALIASES,
    RestartPolicy,
    ServiceSpec,
    State,
    Supervisor,
    build_parser,
    plan,
    resolve_model,
)
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import DEFAULT_ROOT, SERVICE_STATUS


class StatusWatcher:
    """Subscribes to every service status; queues ``(name, started_at)`` of online reports."""

    def __init__(self, env: dict[str, str]) -> None:
        from imu_har.protocol.messages import ServiceStatus
        from imu_har.runtime.client import connect_settings
        from imu_har.runtime.settings import MqttSettings, load_settings

        settings = load_settings(MqttSettings, [], prog="har up", env=env)
        self.online: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._parse = ServiceStatus.from_payload
        self.client = connect_settings(settings, client_id=f"har-up-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.subscribe(SERVICE_STATUS.subscription(settings.topic_root), qos=1)

    def _on_message(self, _c: object, _u: object, msg: object) -> None:
        try:
            status = self._parse(msg.payload)  # type: ignore[attr-defined]
        except PayloadError:  # a foreign or broken status is not ours to judge
            return
        if status.state == "online":
            self.online.put((STATUS_ALIASES.get(status.service, status.service), status.started_at))

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class Launcher:
    """Runs the planned services under a :class:`Supervisor` until stopped."""

    def __init__(self, specs: list[ServiceSpec], args: argparse.Namespace) -> None:
        self.specs = {s.name: s for s in specs}
        self.args = args
        policy = RestartPolicy(args.restart_delay, 2.0, max(args.max_restart_delay, 0.1))
        self.sup = Supervisor([s.name for s in specs], policy)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = False  # set by SIGINT/SIGTERM
        self.broker: MosquittoBroker | None = None
        self.access: BrokerAccess | None = None  # accounts on the private broker
        self.guard: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        if args.topic_root is not None:  # every service, the status watcher and the ACL
            self.env["HAR_TOPIC_ROOT"] = args.topic_root

    def start_broker(self) -> None:
        """Use the configured broker, or start a private Mosquitto."""
        a = self.args
        if a.mqtt_host or self.env.get("HAR_MQTT_HOST"):
            self.env["HAR_MQTT_HOST"] = a.mqtt_host or self.env["HAR_MQTT_HOST"]
            if a.mqtt_port:
                self.env["HAR_MQTT_PORT"] = str(a.mqtt_port)
            say("up", f"broker {self.env['HAR_MQTT_HOST']}:{self.env.get('HAR_MQTT_PORT', 1883)}")
            return
        # Each service logs in with its own random password and gets the deployment's
        # topic rights: an anonymous client may not replace the retained model spec (issue 12).
        root = self.env.get("HAR_TOPIC_ROOT") or DEFAULT_ROOT
        self.broker, self.access = private_broker(self.specs, root, a.mqtt_port or free_port())
        self.broker.start()
        self.env.update(HAR_MQTT_HOST=self.broker.host, HAR_MQTT_PORT=str(self.broker.port))
        say("up", f"private Mosquitto on {self.broker.host}:{self.broker.port}")
        self._guard_broker()

    def _guard_broker(self) -> None:
        """(Re)start the guard that stops the broker should the launcher be killed."""
        self._stop_guard()
        if self.broker is not None and self.broker.process is not None:
            pids = [str(os.getpid()), str(self.broker.process.pid)]
            self.guard = subprocess.Popen(
                [sys.executable, "-c", BROKER_GUARD, *pids], stdin=subprocess.DEVNULL
            )

    def _stop_guard(self) -> None:
        if self.guard is not None:
            self.guard.kill()
            self.guard.wait()
            self.guard = None

    def spawn(self, name: str) -> None:
        """Start (or restart) one service in its own process group."""
        self.sup.restarting(name)
        cmd = [sys.executable, "-c", CHILD_SHIM, str(os.getpid()), name, *self.specs[name].args]
        proc = subprocess.Popen(
            cmd, env=self.child_env(name), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.procs[name] = proc
        self.sup.started(name, proc.pid, time.time())
        restarts = self.sup[name].restarts
        command = shlex.join(["har", name, *self.specs[name].args])
        say("up", f"started {name} (pid {proc.pid}, restarts {restarts}): {command}")
        threading.Thread(target=pump, args=(name, proc), daemon=True).start()

    def child_env(self, name: str) -> dict[str, str]:
        """The environment of ``name``'s process: its own account on the private broker."""
        return {**self.env, **(self.access.env(name) if self.access else {})}

    def reap(self, now: float) -> None:
        """Notice exited children; schedule their restart."""
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[name]
            killpg(proc.pid, signal.SIGKILL)  # leftovers of its process group
            delay = self.sup.exited(name, code, now)
            if delay is not None:
                say("up", f"{name} exited with code {code}; restart in {delay:.1f} s")
            elif self.sup[name].state is State.FAILED:
                say("up", f"{name} exited with code {code}; giving up")

    def check_online(self, watcher: StatusWatcher, now: float) -> None:
        """Mark services online from status reports and dashboard health checks."""
        while not watcher.online.empty():
            name, started_at = watcher.online.get()
            if name in self.specs and self.sup.online(name, now, started_at):
                self._announce(name)
        for name in self.sup.waiting_for():
            url = self.specs[name].health_url
            if url and http_ok(url) and self.sup.online(name, now):
                self._announce(name)

    def _announce(self, name: str) -> None:
        svc = self.sup[name]
        say("up", f"{name} online (pid {svc.pid}, restarts {svc.restarts})")
        if name == "dashboard":
            port, address = self.args.dashboard_port, self.args.dashboard_address
            host = "localhost" if address in {"0.0.0.0", "::", "127.0.0.1"} else address
            say("up", f"dashboard: http://{host}:{port}")
        if self.sup.all_online():
            say("up", f"all {len(self.specs)} services online; Ctrl-C stops everything")

    def write_status(self) -> None:
        """Rewrite the status file atomically when it changed (if asked for one)."""
        path: Path | None = self.args.status_file
        broker = f"{self.env.get('HAR_MQTT_HOST')}:{self.env.get('HAR_MQTT_PORT', 1883)}"
        data = {"pid": os.getpid(), "broker": broker, "services": self.sup.snapshot()}
        text = json.dumps(data, indent=2)
        if path is None or text == getattr(self, "_status_text", None):
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        self._status_text = text

    def run(self) -> int:
        """Start everything, supervise until a signal, stop everything."""
        for sig in (signal.SIGINT, signal.SIGTERM):  # a flag, no lock (see ServiceRuntime)
            signal.signal(sig, lambda *_: setattr(self, "stop_requested", True))
        self.start_broker()
        watcher = StatusWatcher(self.child_env("monitor"))
        deadline, warned = time.monotonic() + self.args.startup_timeout, False
        try:
            while not self.stop_requested:
                now = time.time()
                self.reap(now)
                for name in self.sup.due(now):
                    self.spawn(name)
                self.check_online(watcher, now)
                if not warned and time.monotonic() > deadline and self.sup.waiting_for():
                    warned = True
                    say("up", f"still not online: {', '.join(self.sup.waiting_for())}")
                self._keep_broker()
                self.write_status()
                time.sleep(0.2)
        finally:
            self.shutdown(watcher)
        return 0

    def _keep_broker(self) -> None:
        proc = self.broker.process if self.broker else None
        if self.broker and proc is not None and proc.poll() is not None:
            say("up", "private Mosquitto died; restarting it")
            self.broker.start()
            self._guard_broker()

    def shutdown(self, watcher: StatusWatcher | None = None) -> None:
        """SIGTERM every child group, wait, SIGKILL the rest, stop the broker."""
        signal.signal(signal.SIGINT, lambda *_: self._kill_all())  # a second Ctrl-C: now
        self.sup.stop_all()
        say("up", f"stopping {', '.join(self.procs) or 'nothing'}")
        for proc in self.procs.values():
            killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.args.stop_timeout
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say("up", f"{name} did not stop in {self.args.stop_timeout:g} s; killing it")
            killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.reap(time.time())
        if watcher is not None:
            watcher.close()
        self._stop_guard()
        if self.broker is not None:
            self.broker.cleanup()
        self.write_status()
        say("up", "stopped")

    def _kill_all(self) -> None:
        for proc in self.procs.values():
            killpg(proc.pid, signal.SIGKILL)


def _available(name: str) -> bool:
    from imu_har.ops.cli import commands

    command = commands().get(name)
    if command is None or not command.installed():
        say("up", f"{name} not started: its command is not installed in this checkout")
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``har up``: start the whole system, supervised."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error("--devices must be at least 1")
    problem = refusal(args, os.environ)
    if problem is not None:
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2
    model = resolve_model(args.model)
    if args.model is not None and not (model and (model / "spec.json").is_file()):
        parser.error(f"--model {args.model}: no model artifact there (spec.json missing)")
    if model is None and not args.no_classifier:
        say("up", f"no model at {DEFAULT_MODEL}: classifier not started (make model builds one)")
    specs = [s for s in plan(args, model) if _available(s.name)]
    if not specs:
        parser.error("every service is disabled")
    return Launcher(specs, args).run()
