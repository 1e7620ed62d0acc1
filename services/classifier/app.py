"""``har classifier``: windows in, predictions out, one model artifact at a time.

Subscribes to ``<root>/+/window`` (optionally through the MQTT v5 shared
subscription ``$share/<group>/...`` so replicas split the stream), checks each
window against the model spec, classifies micro-batches with ONNX Runtime or
LiteRT (TensorFlow only as a fallback) and publishes one Prediction per window
on ``<root>/<device>/prediction``. Publishes the model spec retained on
``<root>/model/spec`` so the windower cuts the model's windows. Reloads a model
on command (``<root>/classifier/cmd``) or when a watched directory gets a new
artifact, without pausing classification. See docs/classifier.md.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paho.mqtt.subscribeoptions import SubscribeOptions

from imu_har.protocol import topics
from imu_har.protocol.codec import decode_window
from imu_har.protocol.commands import ClassifierCommand, ClassifierReply
from imu_har.protocol.errors import PayloadError
from imu_har.runtime.service import Inbound, ServiceRuntime
from imu_har.runtime.settings import service_settings
from services.classifier.core import Classifier, Pending, window_device
from services.classifier.fastpath import DeviceIds, fast_window
from services.classifier.model import LoadedModel, load_model
from services.classifier.reload import (
    ArtifactKey,
    Reloader,
    ReloadResult,
    inside,
    newest_artifact,
)
from services.classifier.settings import ClassifierSettings

logger = logging.getLogger(__name__)


class ClassifierService:
    """Runtime handler: windows -> :class:`Classifier` -> prediction messages."""

    def __init__(
        self, settings: ClassifierSettings, runtime: ServiceRuntime, model: LoadedModel
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.root = settings.topic_root
        self.core = Classifier(
            model, settings.smooth_k, settings.smoothing, settings.threshold, settings.max_devices
        )
        self.reloader = Reloader(self._load)
        self._prefix = self.root + "/"
        self._ids = DeviceIds()
        self._cmd_topic = topics.CLASSIFIER_CMD.format(self.root)
        self._reply_topic = topics.CLASSIFIER_REPLY.format(self.root)
        self._spec_topic = topics.MODEL_SPEC.format(self.root)
        self._spec_published: tuple[int, str] | None = None
        self._watch_key: ArtifactKey | None = None
        self._next_watch = 0.0

    def _load(self, path: str) -> LoadedModel:
        s = self.settings
        return load_model(path, s.backend, s.threads, s.max_batch)

    # -- subscriptions and dispatch ------------------------------------------------------
    def subscriptions(self) -> list[tuple[str, Any]]:
        windows = topics.WINDOW.subscription(self.root)
        if self.settings.share_group:
            windows = f"$share/{self.settings.share_group}/{windows}"
        subs: list[tuple[str, Any]] = [
            (windows, self.settings.window_qos),
            (self._cmd_topic, 1),
        ]
        if self.settings.share_group:
            # other replicas' results feed per-device smoothing; our own are not echoed
            subs.append(
                (topics.PREDICTION.subscription(self.root), SubscribeOptions(qos=0, noLocal=True))
            )
        return subs

    def handle_batch(self, messages: list[Inbound]) -> None:
        self._collect_reloads()
        now = time.time()
        groups: dict[int, tuple[LoadedModel, list[Pending]]] = {}
        for message in messages:
            topic = message.topic
            if topic.endswith("/window"):
                self._accept_window(message, now, groups)
            elif topic.endswith("/prediction"):
                if not self.core.observe(message.payload, now):
                    self.runtime.counters.inc("predictions_ignored")
            elif topic == self._cmd_topic:
                self._command(message)
            else:
                self.runtime.reject("bad_topic", topic)
        for model, pending in groups.values():
            self._classify(model, pending)

    def _accept_window(
        self, message: Inbound, now: float, groups: dict[int, tuple[LoadedModel, list[Pending]]]
    ) -> None:
        try:
            window = fast_window(message.payload, self._ids) or decode_window(message.payload)
            if window_device(message.topic, self._prefix) != window.device:
                raise PayloadError("device_mismatch", f"payload device {window.device!r}")
            model = self.core.route(window, now)
        except PayloadError as exc:
            self.runtime.reject(exc.reason, f"{message.topic}: {exc.args[0]}")
            return
        entry = groups.get(id(model))
        if entry is None:
            entry = groups[id(model)] = (model, [])
        entry[1].append(Pending(window, message.received_at))

    def _classify(self, model: LoadedModel, pending: list[Pending]) -> None:
        root = self._prefix
        predictions, rejected = self.core.classify(pending, model)
        self.runtime.publish_many(
            [(root + w.device + "/prediction", payload) for w, payload in predictions]
        )
        for item in rejected:
            self.runtime.reject(
                item.reason, f"{item.window.device}#{item.window.seq}: {item.detail}"
            )

    # -- commands and reloads ------------------------------------------------------------
    def _command(self, message: Inbound) -> None:
        try:
            command = ClassifierCommand.from_payload(message.payload)
        except PayloadError as exc:
            self.runtime.reject(exc.reason, f"{message.topic}: {exc.args[0]}")
            self._reply(message, ClassifierReply(ok=False, action="", error=str(exc)))
            return
        if command.action == "status":
            self._reply(message, ClassifierReply(ok=True, action="status", data=self.details()))
            return
        error = None
        if not command.model:
            error = "reload needs 'model': an artifact directory"
        elif not inside(Path(command.model), self.settings.model_root):
            error = f"{command.model} is outside the allowed --model-root"
        if error is not None:
            self.runtime.counters.inc("reload_refused")
            self._reply(message, ClassifierReply(ok=False, action="reload", error=error))
            return
        assert command.model is not None
        logger.info("reloading model from %s (command)", command.model)
        self.reloader.submit(command.model, request=message)

    def _reply(self, request: Inbound | None, reply: ClassifierReply) -> None:
        if request is not None:
            self.runtime.reply(request, reply.to_payload(), self._reply_topic)

    def _collect_reloads(self) -> None:
        for result in self.reloader.finished():
            self._apply(result)

    def _apply(self, result: ReloadResult) -> None:
        if result.model is None:
            self.runtime.counters.inc("reload_refused")
            self.runtime.error(f"refused model {result.path}: {result.error}")
            self._reply(
                result.request, ClassifierReply(ok=False, action="reload", error=result.error)
            )
            return
        old = self.core.model
        self.core.swap(result.model, self.settings.grace)
        if result.key is not None:
            self._watch_key = result.key
        self.runtime.counters.inc("reloads")
        logger.info(
            "serving %s (%s) instead of %s", result.model.key, result.model.backend.name, old.key
        )
        self._publish_spec()
        self.runtime.publish_status(force=True)
        self._reply(
            result.request, ClassifierReply(ok=True, action="reload", data=result.model.describe())
        )

    def _publish_spec(self) -> None:
        spec = self.core.model.spec
        self.runtime.publish(self._spec_topic, spec.to_payload(), qos=1, retain=True)
        self._spec_published = (self.runtime.counters.get("disconnects"), spec.version)

    def _watch(self, now: float) -> None:
        watch_dir = self.settings.watch_dir
        if watch_dir is None or now < self._next_watch or self.reloader.busy:
            return
        self._next_watch = now + self.settings.watch_interval
        key = newest_artifact(watch_dir)
        if key is None or key == self._watch_key or key in self.reloader.refused:
            return
        logger.info("new artifact in %s: %s", watch_dir, key[0])
        self.reloader.submit(key[0], key=key)

    # -- periodic work, status, shutdown -------------------------------------------------
    def tick(self, now: float) -> None:
        self._collect_reloads()
        self._watch(now)
        if self.runtime.connected.is_set():
            current = (self.runtime.counters.get("disconnects"), self.core.model.spec.version)
            if self._spec_published != current:  # first connect, reconnect, or new model
                self._publish_spec()
        if self.core.previous is not None and now >= self.core.previous_until:
            self.core.previous = None
        self.core.smoother.evict(now - self.settings.idle_timeout)

    def details(self) -> dict[str, Any]:
        core = self.core
        previous = core.previous.key if core.previous is not None else None
        return {
            "model": core.model.describe(),
            "backend": core.model.backend.name,
            "previous_model": previous,
            "reloading": self.reloader.busy,
            "smoothing": self.settings.smoothing,
            "smooth_k": self.settings.smooth_k,
            "threshold": self.settings.threshold,
            "share_group": self.settings.share_group,
            "watch_dir": str(self.settings.watch_dir) if self.settings.watch_dir else None,
            "max_batch": self.settings.max_batch,
            "batch_wait": self.settings.batch_wait,
            "batches": core.batches,
            "classified": core.classified,
            "mean_batch": round(core.classified / core.batches, 2) if core.batches else 0.0,
            "devices": core.smoother.devices,
        }

    def close(self) -> None:
        self.reloader.close()


def initial_model(settings: ClassifierSettings) -> LoadedModel:
    """The model to start with: ``--model``, else the newest in ``--watch-dir``."""
    path = settings.model
    if path is None and settings.watch_dir is not None:
        key = newest_artifact(settings.watch_dir)
        path = Path(key[0]) if key else None
    if path is None:
        raise PayloadError("bad_artifact", "no model: give --model or a --watch-dir with one")
    return load_model(path, settings.backend, settings.threads, settings.max_batch)


def build(
    settings: ClassifierSettings, model: LoadedModel
) -> tuple[ServiceRuntime, ClassifierService]:
    """The runtime and handler for ``settings`` (used by main, tests and benchmarks)."""
    runtime = ServiceRuntime(
        "classifier", settings, max_batch=settings.max_batch, batch_wait=settings.batch_wait
    )
    return runtime, ClassifierService(settings, runtime, model)


def main(argv: Sequence[str] | None = None) -> int:
    """``har classifier``: windows -> predictions."""
    settings = service_settings(
        ClassifierSettings,
        "classifier",
        "Classify windows with a model artifact and publish predictions.",
        argv,
    )
    try:
        model = initial_model(settings)
    except PayloadError as exc:
        print(f"har classifier: {exc}", file=sys.stderr)
        return 2
    logger.info("serving %s with %s from %s", model.key, model.backend.name, model.path)
    runtime, service = build(settings, model)
    return runtime.run(service)
