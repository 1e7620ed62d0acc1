"""The classifier's pure logic: check windows, classify batches, build predictions.

No MQTT here. :class:`Classifier` takes decoded windows with their receive
times, checks each against the model spec, runs every acceptable window of a
batch through the model in one call, smooths per device and returns the
Prediction JSON payloads. JSON is assembled from pre-escaped pieces (labels,
model name) because ``Prediction.model_dump_json`` per window would cost more
than the inference itself at tens of thousands of windows per second; tests
check the output against :class:`imu_har.protocol.messages.Prediction`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from imu_har.protocol.codec import Window
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.model_spec import ModelSpec
from services.classifier.model import LoadedModel
from services.classifier.settings import ClassifierSettings
from services.classifier.smoothing import UNKNOWN, Smoother

RATE_TOLERANCE = 1e-3  # relative; window rates travel as float32


def check_window(window: Window, spec: ModelSpec) -> None:
    """Raise :class:`PayloadError` unless ``window`` has the spec's channels, length and rate."""
    if list(window.channels) != spec.channels:
        raise PayloadError(
            "channel_mismatch",
            f"window channels {list(window.channels)} differ from the model's {spec.channels}",
        )
    if spec.units is not None and list(window.units) != spec.units:
        raise PayloadError(
            "unit_mismatch",
            f"window units {list(window.units)} differ from the model's {spec.units}",
        )
    if window.samples.shape[0] != spec.window:
        raise PayloadError(
            "length_mismatch",
            f"window of {window.samples.shape[0]} samples, the model needs {spec.window}",
        )
    if abs(window.rate - spec.rate) > RATE_TOLERANCE * spec.rate:
        raise PayloadError(
            "rate_mismatch", f"window rate {window.rate:g} Hz, the model needs {spec.rate:g} Hz"
        )


class PredictionEncoder:
    """Prediction JSON for one model: one ``%`` template with pre-escaped labels and names.

    A single C-level ``%`` formatting per window is several times cheaper than
    pydantic or ``json.dumps``; window times keep full precision (``%r``).
    """

    def __init__(self, spec: ModelSpec) -> None:
        def literal(value: str) -> str:  # a JSON string, safe inside a % template
            return json.dumps(value).replace("%", "%%")

        self.labels = list(spec.labels)
        self._names = {i: json.dumps(label) for i, label in enumerate(spec.labels)}
        self._names[-1] = json.dumps(UNKNOWN)
        self._smoothed = {label: json.dumps(label) for label in [*spec.labels, UNKNOWN]}
        # %.9g round-trips float32 exactly and is ~5x cheaper than %r of its float64 value
        pairs = ",".join(literal(label) + ":%.9g" for label in spec.labels)
        self._template = (
            '{"device":"%s","window_seq":%d,"window_start":%r,"window_end":%r,'
            '"label":%s,"confidence":%.9g,"probabilities":{' + pairs + "},"
            '"smoothed_label":%s,'
            f'"model":{literal(spec.name)},"model_version":{literal(spec.version)},'
            '"latency_ms":%.4f,"source_time":%r,"classified_at":%.6f}'
        )

    def encode(
        self,
        window: Window,
        probs: list[float],
        label: int,
        smoothed: str,
        latency_ms: float,
        now: float,
    ) -> bytes:
        """One Prediction JSON payload (fields as :class:`imu_har.protocol.messages.Prediction`)."""
        best = max(probs)
        confidence = 1.0 if best > 1.0 else (0.0 if best < 0.0 else best)
        smoothed_json = self._smoothed.get(smoothed) or json.dumps(smoothed)
        values = (
            window.device,
            window.seq,
            window.start,
            window.end,
            self._names[label],
            confidence,
            *probs,
            smoothed_json,
            latency_ms,
            window.source_time,
            now,
        )
        return (self._template % values).encode()


@dataclass
class Rejected:
    """A window refused after decoding: why, for the reject counter."""

    window: Window
    reason: str
    detail: str


@dataclass
class Pending:
    """A decoded window waiting in a batch, with when it was received."""

    window: Window
    received_at: float


class Classifier:
    """Batches of windows -> Prediction payloads, with per-device smoothing."""

    def __init__(self, model: LoadedModel, settings: ClassifierSettings) -> None:
        """Serve ``model``; smoothing, threshold, device bound and grace come from ``settings``."""
        self.model = model
        self.settings = settings
        self.previous: LoadedModel | None = None  # serves in-flight windows of the old spec
        self.previous_until = 0.0
        self.smoother = Smoother(
            model.spec.labels,
            settings.smooth_k,
            settings.smoothing,
            settings.threshold,
            settings.max_devices,
        )
        self._encoders: dict[int, PredictionEncoder] = {id(model): PredictionEncoder(model.spec)}
        self.batches = 0
        self.classified = 0

    def swap(self, model: LoadedModel, now: float) -> None:
        """Serve ``model`` from ``now`` on; the old one still takes its own windows for a while.

        "A while" is ``settings.grace`` seconds: until the windower has followed the new spec.
        """
        old = self.model
        self.previous, self.previous_until = old, now + self.settings.grace
        self.model = model
        self._encoders = {id(model): PredictionEncoder(model.spec), id(old): self._encoder(old)}
        if model.spec.labels != old.spec.labels:
            self.smoother.clear(model.spec.labels)

    def _encoder(self, model: LoadedModel) -> PredictionEncoder:
        encoder = self._encoders.get(id(model))
        if encoder is None:
            encoder = self._encoders[id(model)] = PredictionEncoder(model.spec)
        return encoder

    def route(self, window: Window, now: float) -> LoadedModel:
        """The model that takes ``window``; :class:`PayloadError` if none fits."""
        try:
            check_window(window, self.model.spec)
            return self.model
        except PayloadError:
            previous = self.previous
            if previous is not None and now < self.previous_until:
                try:
                    check_window(window, previous.spec)
                    return previous
                except PayloadError:
                    pass
            raise

    def classify(
        self, pending: list[Pending], model: LoadedModel | None = None
    ) -> tuple[list[tuple[Window, bytes]], list[Rejected]]:
        """Predictions for windows that all fit ``model`` (default: the active one).

        Also returns the windows refused here: non-finite samples (``not_finite``;
        checked per batch for windows from :func:`fastpath.fast_window`) or a
        non-finite model output (``bad_output``).
        """
        if not pending:
            return [], []
        model = model or self.model
        batch = np.stack([p.window.samples for p in pending])
        rejected: list[Rejected] = []
        finite_in = np.isfinite(batch).all(axis=(1, 2))
        if not finite_in.all():
            keep = finite_in.tolist()
            rejected = [
                Rejected(p.window, "not_finite", "samples contain NaN or infinity")
                for p, ok in zip(pending, keep, strict=True)
                if not ok
            ]
            pending = [p for p, ok in zip(pending, keep, strict=True) if ok]
            batch = batch[finite_in]
            if not pending:
                return [], rejected
        probs = np.asarray(model.predict(batch), dtype=np.float32)
        finite = np.isfinite(probs.sum(axis=1)).tolist()
        rows = probs.tolist()
        best = probs.argmax(axis=1).tolist()
        confident = (probs.max(axis=1) >= self.smoother.threshold).tolist()
        encoder = self._encoder(model)
        smoother = self.smoother
        smooth = model.spec.labels == smoother.labels
        out: list[tuple[Window, bytes]] = []
        for i, item in enumerate(pending):
            window = item.window
            if not finite[i]:
                rejected.append(Rejected(window, "bad_output", "model output is not finite"))
                continue
            label = best[i] if confident[i] else -1
            now = time.time()
            if smooth:
                smoother.add(window.device, window.seq, window.start, probs[i], now, label)
                smoothed = smoother.smoothed(window.device, window.seq)
            else:
                smoothed = encoder.labels[label] if label >= 0 else UNKNOWN
            latency = max(0.0, 1000.0 * (now - item.received_at))
            out.append((window, encoder.encode(window, rows[i], label, smoothed, latency, now)))
        self.batches += 1
        self.classified += len(out)
        return out, rejected

    def observe(self, payload: bytes, now: float) -> bool:
        """Feed another replica's prediction into smoothing; False if it does not fit."""
        try:
            data: dict[str, Any] = json.loads(payload)
            if data.get("model_version") != self.model.spec.version:
                return False
            probabilities = data["probabilities"]
            probs = np.array([float(probabilities[lb]) for lb in self.smoother.labels], np.float32)
            device, seq = str(data["device"]), int(data["window_seq"])
            start = float(data["window_start"])
        except (ValueError, KeyError, TypeError):
            return False
        self.smoother.add(device, seq, start, probs, now)
        return True

    def serving_previous(self, now: float) -> LoadedModel | None:
        """The previous model while its grace period lasts (forgotten after it)."""
        if self.previous is not None and now >= self.previous_until:
            self.previous = None
        return self.previous

    def models(self) -> Iterable[LoadedModel]:
        """The active model, then the previous one while it still serves."""
        yield self.model
        if self.previous is not None:
            yield self.previous
