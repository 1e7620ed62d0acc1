"""The classifier's runtime handler: windows -> :class:`Classifier` -> predictions.

Besides the windows it answers commands (``reload``, ``status``), keeps its
model spec retained on ``<root>/model/spec`` (and puts it back when another
one appears there, see :mod:`services.classifier.specguard`), reloads from a
watched directory and, with a shared subscription, feeds the other replicas'
predictions into smoothing. See docs/classifier.md.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from paho.mqtt.subscribeoptions import SubscribeOptions

from imu_har.protocol import topics
from imu_har.protocol.codec import decode_window
from imu_har.protocol.commands import ClassifierCommand, ClassifierReply
from imu_har.protocol.errors import PayloadError
from imu_har.runtime.handler import each
from imu_har.runtime.service import Inbound, ServiceRuntime
from services.classifier.active import ActiveFile
from services.classifier.core import Classifier, Pending
from services.classifier.fastpath import DeviceIds, fast_window
from services.classifier.model import LoadedModel, load_model
from services.classifier.reload import (
    ArtifactKey,
    Reloader,
    ReloadRequest,
    ReloadResult,
    newest_artifact,
    reload_refusal,
    reload_roots,
)
from services.classifier.settings import ClassifierSettings
from services.classifier.spec_keeper import SpecKeeper

logger = logging.getLogger(__name__)

BUSY = "a reload is already in progress; a newer reload command replaced this one"
STOPPING = "the classifier is stopping"


class ClassifierHandler:
    """Runtime handler: windows -> :class:`Classifier` -> prediction messages."""

    def __init__(
        self,
        settings: ClassifierSettings,
        runtime: ServiceRuntime,
        model: LoadedModel,
        active: ActiveFile | None = None,
    ) -> None:
        """Serve ``model`` (chosen by ``app.build`` with ``active``) on ``runtime``."""
        self.settings = settings
        self.runtime = runtime
        self.active = active or ActiveFile(settings)
        if self.active.ignored is not None:  # ActiveFile logged why
            runtime.counters.reject("bad_active_file")
        root = settings.topic_root
        self.core = Classifier(model, settings)
        self.reloader = Reloader(self._load)
        self.roots = reload_roots(settings)
        self._ids = DeviceIds()
        self._window_device = topics.WINDOW.splitter(root)
        self._prediction_device = topics.PREDICTION.splitter(root)
        self._prediction_topic = topics.PREDICTION.fast(root)
        self._cmd_topic = topics.CLASSIFIER_CMD.format(root)
        self._reply_topic = topics.CLASSIFIER_REPLY.format(root)
        self._spec_topic = topics.MODEL_SPEC.format(root)
        self.spec = SpecKeeper(runtime, self._spec_topic)
        self._watch_key: ArtifactKey | None = self.active.watch_key()
        self._next_watch = 0.0

    def _load(self, path: str) -> LoadedModel:
        return load_model(path, self.settings)

    # -- subscriptions and dispatch ------------------------------------------------------
    def subscriptions(self) -> list[tuple[str, Any]]:
        """Windows (shared with ``--share-group``), commands, the retained spec."""
        root, group = self.settings.topic_root, self.settings.share_group
        windows = topics.WINDOW.shared(group, root) if group else topics.WINDOW.subscription(root)
        subs: list[tuple[str, Any]] = [
            (windows, self.settings.window_qos),
            (self._cmd_topic, 1),
            # who else publishes a spec (no local: our own publications do not come back)
            (self._spec_topic, SubscribeOptions(qos=1, noLocal=True)),
        ]
        if group:
            # other replicas' results feed per-device smoothing; our own are not echoed
            subs.append((topics.PREDICTION.subscription(root), SubscribeOptions(noLocal=True)))
        return subs

    def handle_batch(self, messages: list[Inbound]) -> None:
        """Decode and route every window, handle the other messages, then classify per model.

        Nothing raised by one message stops the others (issue 12: a command whose
        reply raised dropped every window of its batch). Windows are decoded inline,
        not through :func:`each`: this loop runs 20,000 times a second.
        """
        self._collect_reloads()
        now = time.time()
        groups: dict[int, tuple[LoadedModel, list[Pending]]] = {}
        others: list[Inbound] = []
        window_device, ids, route = self._window_device, self._ids, self.core.route
        for message in messages:
            device = window_device(message.topic)
            if device is None:
                others.append(message)
                continue
            try:
                payload = message.payload
                window = fast_window(payload, ids) or decode_window(payload)
                if window.device != device:
                    raise PayloadError("device_mismatch", f"payload device {window.device!r}")
                model = route(window, now)
            except PayloadError as exc:
                self.runtime.reject(exc.reason, f"{message.topic!r}: {exc.args[0]}")
                continue
            except Exception as exc:  # a bug in one window must not cost the others
                logger.exception("classifier failed on a window of %r", message.topic)
                self._bug(f"window on {message.topic!r}", exc)
                continue
            entry = groups.get(id(model))
            if entry is None:
                entry = groups[id(model)] = (model, [])
            entry[1].append(Pending(window, message.received_at))
        if others:
            each(self.runtime, others, lambda message: self._handle_other(message, now))
        for model, pending in groups.values():
            self._classify(model, pending)

    def _handle_other(self, message: Inbound, now: float) -> None:
        topic = message.topic
        if self._prediction_device(topic) is not None:
            if not self.core.observe(message.payload, now):
                self.runtime.counters.inc("predictions_ignored")
        elif topic == self._cmd_topic:
            self._command(message)
        elif topic == self._spec_topic:
            self.spec.seen(message.payload, self.core.model.spec)
            self._check_spec(now)
        else:
            raise PayloadError("bad_topic", "not a topic the classifier subscribes to")

    def _classify(self, model: LoadedModel, pending: list[Pending]) -> None:
        try:
            predictions, rejected = self.core.classify(pending, model)
        except Exception as exc:  # one model failing must not cost the other group
            logger.exception("classifier failed on a batch for %r", model.key)
            self._bug(f"classifying {len(pending)} windows with {model.key!r}", exc)
            return
        topic = self._prediction_topic
        self.runtime.publish_many([(topic(w.device), payload) for w, payload in predictions])
        for item in rejected:
            self.runtime.reject(
                item.reason, f"{item.window.device}#{item.window.seq}: {item.detail}"
            )

    def _bug(self, where: str, exc: Exception) -> None:
        """Count a bug as :func:`each` does (the caller logged the traceback)."""
        self.runtime.reject("handler_error", f"{where}: {exc!r}")
        self.runtime.error(f"handler failed on {where}: {exc!r}")

    # -- commands and reloads ------------------------------------------------------------
    def _command(self, message: Inbound) -> None:
        try:
            command = ClassifierCommand.from_payload(message.payload)
        except PayloadError as exc:
            self.runtime.reject(exc.reason, f"{message.topic!r}: {exc.args[0]!r}")
            self._reply(message, ClassifierReply(ok=False, action="", error=str(exc)))
            return
        if command.action == "status":
            self._reply(message, ClassifierReply(ok=True, action="status", data=self.details()))
            return
        error = reload_refusal(command.model, self.roots, self.settings.model)
        if error is not None or command.model is None:
            self.runtime.counters.inc("reload_refused")
            logger.warning("reload refused: %s", error)
            self._reload_failed(message, error)
            return
        logger.info("reloading model from %r (command)", command.model)
        replaced = self.reloader.submit(command.model, request=message)
        if replaced is not None:
            self._refuse_replaced(replaced)

    def _refuse_replaced(self, job: ReloadRequest) -> None:
        self.runtime.reject("reload_busy", f"reload of {job.path!r} replaced by a newer one")
        self._reload_failed(job.request, BUSY)

    def _reply(self, request: Inbound | None, reply: ClassifierReply) -> None:
        if request is not None:
            self.runtime.reply(request, reply.to_payload(), self._reply_topic)

    def _reload_failed(self, request: Inbound | None, error: str | None) -> None:
        self._reply(request, ClassifierReply(ok=False, action="reload", error=error))

    def _collect_reloads(self) -> None:
        for result in self.reloader.finished():
            try:
                self._apply(result)
            except Exception as exc:  # the batch after it still gets classified
                logger.exception("classifier failed to apply the reload of %r", result.path)
                self._bug(f"applying the reload of {result.path!r}", exc)

    def _apply(self, result: ReloadResult) -> None:
        if result.model is None:
            self.runtime.counters.inc("reload_refused")
            self.runtime.error(f"refused model {result.path!r}: {result.error!r}")
            self._reload_failed(result.request, result.error)
            return
        old = self.core.model
        self.core.swap(result.model, time.time())
        if result.key is not None:
            self._watch_key = result.key
        self.runtime.counters.inc("reloads")
        logger.info(
            "serving %r (%s) instead of %r", result.model.key, result.model.backend.name, old.key
        )
        if result.request is not None and (error := self.active.record(result.model)):
            self.runtime.counters.inc("active_file_errors")  # serving it all the same
            self.runtime.error(error)
        self.spec.publish(self.core.model.spec)
        self.runtime.publish_status(force=True)
        self._reply(
            result.request, ClassifierReply(ok=True, action="reload", data=result.model.describe())
        )

    def _watch(self, now: float) -> None:
        watch_dir = self.settings.watch_dir
        if watch_dir is None or now < self._next_watch or self.reloader.busy:
            return
        self._next_watch = now + self.settings.watch_interval
        key = newest_artifact(watch_dir)
        if key is None or key == self._watch_key or key in self.reloader.refused:
            return
        logger.info("new artifact in %r: %r", str(watch_dir), key[0])
        self.reloader.submit(key[0], key=key)  # idle, so nothing is replaced

    # -- the retained spec ---------------------------------------------------------------
    def _check_spec(self, now: float) -> None:
        """Put our spec back over a foreign one when :class:`SpecKeeper` says so."""
        previous = self.core.serving_previous(now)
        previous_spec = previous.spec if previous else None
        self.spec.check(self.core.model.spec, previous_spec, self.reloader.busy, now)

    # -- periodic work, status, shutdown -------------------------------------------------
    def tick(self, now: float) -> None:
        """Collect reloads, scan the watched directory, keep the spec published, evict."""
        self._collect_reloads()
        self._watch(now)
        if self.runtime.connected.is_set():
            self.spec.keep(self.core.model.spec)
            self._check_spec(now)
        self.core.serving_previous(now)  # forgets the previous model after its grace
        self.core.smoother.evict(now - self.settings.idle_timeout)

    def details(self) -> dict[str, Any]:
        """Status details: the model served (its version is the published spec's), settings."""
        core, s = self.core, self.settings
        previous = core.previous.key if core.previous is not None else None
        return {
            "model": core.model.describe(),
            "backend": core.model.backend.name,
            "previous_model": previous,
            "reloading": self.reloader.busy,
            "reloads_started": self.reloader.started,
            "model_roots": [str(root) for root in self.roots],
            "active_file": self.active.describe(),
            "smoothing": s.smoothing,
            "smooth_k": s.smooth_k,
            "threshold": s.threshold,
            "share_group": s.share_group,
            "watch_dir": str(s.watch_dir) if s.watch_dir else None,
            "max_batch": s.max_batch,
            "batch_wait": s.batch_wait,
            "batches": core.batches,
            "classified": core.classified,
            "mean_batch": round(core.classified / core.batches, 2) if core.batches else 0.0,
            "devices": core.smoother.devices,
        }

    def close(self) -> None:
        """Stop the loader; reload commands not served get their one reply."""
        for job in self.reloader.close():
            self._reload_failed(job.request, STOPPING)
