"""The dashboard's state: MQTT messages in, bounded per-device buffers out.

Pure and thread-safe: the MQTT thread calls :meth:`Store.ingest` with a topic
and payload; the Streamlit script thread reads copies with :meth:`Store.device`
/ :meth:`Store.snapshot`. Nothing here imports Streamlit or paho. Every buffer
is a bounded deque, the number of devices and services is capped, idle
devices are evicted (the per-device part: :mod:`services.dashboard.device_table`),
and a malformed message is counted by reason, never raised.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imu_har.protocol import topics
from imu_har.protocol.commands import CommandReply
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import RecorderStatus, ServiceStatus
from imu_har.protocol.model_spec import ModelSpec
from imu_har.protocol.trainer import TrainerStatus
from services.dashboard.device_table import DeviceTable
from services.dashboard.devices import DeviceView, Limits, PlotFrame
from services.dashboard.models import live_path
from services.dashboard.workouts import WorkoutView

__all__ = ["DeviceView", "Limits", "PlotFrame", "Reply", "Store", "WorkoutView"]

MAX_SERVICES = 64
MAX_REPLIES = 50
MAX_IGNORED = 32  # distinct last topic levels counted as ignored
MAX_MODEL_HISTORY = 16  # artifact paths the classifier served, newest last (for roll back)


def service_name(name: str) -> str:
    """The ``service`` level of a status topic if it is a plain name (as a client id).

    It is shown on the System page and keys the service table, so an arbitrary
    level (Markdown, 64 KiB of text) is refused as ``bad_topic``.
    """
    try:
        return topics.validate_client_id(name)
    except ValueError:
        raise PayloadError("bad_topic", "service name is not 1-64 of [A-Za-z0-9_.:-]") from None


@dataclass(frozen=True)
class Reply:
    """A command reply with the correlation id it answered (None on the fallback topic)."""

    topic: str
    correlation: str | None
    reply: CommandReply
    received_at: float


class Store:
    """Thread-safe dashboard state fed by :meth:`ingest`."""

    def __init__(
        self,
        root: str = topics.DEFAULT_ROOT,
        limits: Limits | None = None,
        client_id: str | None = None,
    ) -> None:
        self.root = root
        self.client_id = client_id  # replies to other dashboards are not ours (None: any)
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._table = DeviceTable(self.limits)
        self.services: dict[str, ServiceStatus] = {}
        self.model_spec: ModelSpec | None = None
        self.recorder_status: RecorderStatus | None = None
        self.trainer_status: TrainerStatus | None = None
        # Artifact paths the classifier served, in order (from its status): "roll back" reloads
        # the one before the live one. Its own previous_model is a name, and only kept briefly.
        self.model_history: deque[str] = deque(maxlen=MAX_MODEL_HISTORY)
        self.replies: deque[Reply] = deque(maxlen=MAX_REPLIES)
        self.malformed: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()  # valid traffic the dashboard does not show
        self.received = 0
        self._fixed: dict[str, Any] = {
            topics.MODEL_SPEC.format(root): self._on_model_spec,
            topics.RECORDER_STATUS.format(root): self._on_recorder_status,
            topics.RECORDER_REPLY.format(root): self._on_reply,
            topics.CLASSIFIER_REPLY.format(root): self._on_reply,
            topics.TRAINER_STATUS.format(root): self._on_trainer_status,
            topics.TRAINER_REPLY.format(root): self._on_reply,
        }
        self._commands = {
            topics.RECORDER_CMD.format(root),
            topics.CLASSIFIER_CMD.format(root),
            topics.TRAINER_CMD.format(root),
        }
        self._device_kinds: list[tuple[Callable[[str], str | None], Any]] = [
            (topics.IMU.splitter(root), self._table.frame),
            (topics.WINDOW.splitter(root), self._table.window),
            (topics.PREDICTION.splitter(root), self._table.prediction),
            (topics.DEVICE_STATUS.splitter(root), self._table.device_status),
            (topics.GROUND_TRUTH.splitter(root), self._table.truth),
        ]
        workouts = {"workout": topics.WORKOUT, "rep": topics.REP, "set": topics.SET}
        for kind, template in workouts.items():
            handle = functools.partial(self._on_workout, kind)
            self._device_kinds.append((template.splitter(root), handle))

    # -- input (MQTT thread) ---------------------------------------------------------
    def ingest(
        self,
        topic: str,
        payload: bytes,
        now: float | None = None,
        correlation: bytes | None = None,
    ) -> None:
        """Take one message; a malformed one is counted under its reason and dropped."""
        now = time.time() if now is None else now
        with self._lock:
            self.received += 1
            try:
                self._dispatch(topic, payload, now, correlation)
            except PayloadError as exc:
                self.malformed[exc.reason] += 1
            except (ValueError, TypeError, KeyError, IndexError):  # defensive: never raise
                self.malformed["bad_payload"] += 1

    def _dispatch(self, topic: str, payload: bytes, now: float, corr: bytes | None) -> None:
        handler = self._fixed.get(topic)
        if handler is not None:
            handler(topic, payload, now, corr)
            return
        if topic in self._commands:  # commands (ours or anyone's) are not for display
            self._ignore("command")
            return
        reply = topics.DASHBOARD_REPLY.parse(topic, self.root)
        if reply is not None:
            if self.client_id is None or reply["client"] == self.client_id:
                self._on_reply(topic, payload, now, corr)
            else:  # another dashboard's reply: it could push ours out of the bounded list
                self._ignore("other_dashboard_reply")
            return
        service = topics.SERVICE_STATUS.parse(topic, self.root)
        if service is not None:
            self._on_service_status(service_name(service["service"]), payload)
            return
        for split, handle in self._device_kinds:
            device = split(topic)
            if device is not None:
                handle(topics.validate_device_id(device), payload, now)
                return
        # valid MQTT traffic the dashboard has no use for: count by last level
        inside = topic.startswith(self.root + "/")
        self._ignore(topic.rsplit("/", 1)[-1][:32] if inside else "outside_root")

    def _ignore(self, key: str) -> None:
        known = key in self.ignored or len(self.ignored) < MAX_IGNORED
        self.ignored[key if known else "other"] += 1

    def _on_workout(self, kind: str, device: str, payload: bytes, now: float) -> None:
        if not self._table.workout(kind, device, payload, now):
            self._ignore("duplicate")

    def _on_service_status(self, name: str, payload: bytes) -> None:
        if not payload:
            self.services.pop(name, None)
            return
        status = ServiceStatus.from_payload(payload)
        if name not in self.services and len(self.services) >= MAX_SERVICES:
            raise PayloadError("too_many_services", "service table is full")
        self.services[name] = status
        if name == "classifier":
            path = live_path(status.details)
            fresh = not self.model_history or self.model_history[-1] != path
            if path is not None and len(path) <= 4096 and fresh:
                self.model_history.append(path)

    def _on_model_spec(self, _t: str, payload: bytes, _n: float, _c: bytes | None) -> None:
        self.model_spec = ModelSpec.from_payload(payload) if payload else None

    def _on_trainer_status(self, _t: str, payload: bytes, _n: float, _c: bytes | None) -> None:
        self.trainer_status = TrainerStatus.from_payload(payload) if payload else None

    def _on_recorder_status(self, _t: str, payload: bytes, _n: float, _c: bytes | None) -> None:
        if not payload:
            self.recorder_status = None
            return
        self.recorder_status = RecorderStatus.from_payload(payload)

    def _on_reply(self, topic: str, payload: bytes, now: float, corr: bytes | None) -> None:
        reply = CommandReply.from_payload(payload)
        key = corr.decode("ascii", "replace") if corr else None
        self.replies.append(Reply(topic, key, reply, now))

    # -- output (script thread) ------------------------------------------------------
    def evict_idle(self, now: float | None = None) -> None:
        """Forget devices silent for longer than ``idle_timeout``."""
        with self._lock:
            self._table.evict(time.time() if now is None else now)

    def devices(self) -> list[str]:
        """Ids of the devices currently tracked, sorted."""
        with self._lock:
            return sorted(self._table.devices)

    def device(self, device: str, now: float | None = None) -> DeviceView | None:
        """A consistent copy of one device's state, or None if unknown."""
        now = time.time() if now is None else now
        with self._lock:
            state = self._table.devices.get(device)
            return None if state is None else DeviceView.of(state, now)

    def workout(self, device: str, now: float | None = None) -> WorkoutView | None:
        """A consistent copy of one device's workout, or None if nothing came from har workout."""
        now = time.time() if now is None else now
        with self._lock:
            track = self._table.workouts.get(device)
            return None if track is None else WorkoutView.of(track, now)

    def reply_for(self, correlation: str) -> Reply | None:
        """The reply that carries ``correlation``, if it has arrived."""
        with self._lock:
            return next((r for r in self.replies if r.correlation == correlation), None)

    def snapshot(self) -> dict[str, Any]:
        """Copies of the global state: services, model spec, recorder, counters."""
        with self._lock:
            return {
                "services": dict(self.services),
                "model_spec": self.model_spec,
                "recorder_status": self.recorder_status,
                "trainer_status": self.trainer_status,
                "model_history": list(self.model_history),
                "replies": list(self.replies),
                "malformed": dict(self.malformed),
                "ignored": dict(self.ignored),
                "received": self.received,
                "evicted": self._table.evicted,
                "devices": sorted(self._table.devices),
            }

    @property
    def evicted(self) -> int:
        """Devices forgotten so far (idle, or pushed out by a new one)."""
        return self._table.evicted

    def sizes(self) -> dict[str, int]:
        """Element counts of every buffer (for the memory-bound tests)."""
        with self._lock:
            sizes = self._table.sizes()
            return sizes | {"services": len(self.services), "replies": len(self.replies)}
