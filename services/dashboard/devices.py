"""Per-device dashboard state: bounded buffers, live accuracy, immutable views.

Used by :mod:`services.dashboard.store` under its lock; pure (no Streamlit, no paho).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from imu_har.protocol.messages import DeviceStatus, GroundTruth, Prediction

REST_LABELS = frozenset({"rest", "unknown"})


@dataclass(frozen=True)
class Limits:
    """Bounds of the store (every buffer has one)."""

    max_devices: int = 32
    idle_timeout: float = 120.0  # seconds without any message before a device is forgotten
    plot_samples: int = 2000  # IMU samples kept per device for the scrolling plot
    predictions: int = 300  # predictions kept per device for the timeline
    truths: int = 200  # ground-truth changes kept per device
    rate_events: int = 512  # arrival times kept per device for frames/s


@dataclass
class PlotFrame:
    """Samples of one frame with the time of each sample (Unix seconds)."""

    times: np.ndarray
    samples: np.ndarray
    channels: tuple[str, ...]
    units: tuple[str, ...]


@dataclass
class Accuracy:
    """Predictions judged against the ground truth in effect at the window's time."""

    correct: int = 0
    total: int = 0
    smoothed_correct: int = 0
    skipped: int = 0  # no truth, rest, or the window spans a change of activity
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=50))

    @property
    def value(self) -> float | None:
        """Accuracy since the device was first seen, or None before any judged window."""
        return self.correct / self.total if self.total else None

    @property
    def recent_value(self) -> float | None:
        """Accuracy over the last 50 judged windows."""
        return sum(self.recent) / len(self.recent) if self.recent else None


@dataclass
class DeviceState:
    """Everything the dashboard keeps about one device (all bounded)."""

    device: str
    limits: Limits
    last_seen: float = 0.0
    frames: int = 0
    windows: int = 0
    plot: deque[PlotFrame] = field(default_factory=deque)
    plot_samples: int = 0
    frame_arrivals: deque[float] = field(default_factory=deque)
    predictions: deque[tuple[float, Prediction]] = field(default_factory=deque)
    truths: deque[GroundTruth] = field(default_factory=deque)
    status: DeviceStatus | None = None
    accuracy: Accuracy = field(default_factory=Accuracy)

    def __post_init__(self) -> None:
        self.frame_arrivals = deque(maxlen=self.limits.rate_events)
        self.predictions = deque(maxlen=self.limits.predictions)
        self.truths = deque(maxlen=self.limits.truths)

    def add_frame(self, plot_frame: PlotFrame, now: float) -> None:
        """Append a frame's samples, dropping the oldest beyond ``plot_samples``."""
        self.frames += 1
        self.frame_arrivals.append(now)
        self.plot.append(plot_frame)
        self.plot_samples += len(plot_frame.times)
        while len(self.plot) > 1 and self.plot_samples - len(self.plot[0].times) >= (
            self.limits.plot_samples
        ):
            self.plot_samples -= len(self.plot.popleft().times)

    def truth_at(self, when: float) -> str | None:
        """The true label in effect at ``when``, if the history covers it."""
        label = None
        for truth in self.truths:
            if truth.time <= when:
                label = truth.label
            else:
                break
        return label

    def judge(self, prediction: Prediction) -> None:
        """Count the prediction against the truth at its window's start and end."""
        first = self.truth_at(prediction.window_start)
        last = self.truth_at(prediction.window_end)
        if first is None or first != last or first.lower() in REST_LABELS:
            self.accuracy.skipped += 1
            return
        hit = prediction.label == first
        self.accuracy.total += 1
        self.accuracy.correct += hit
        self.accuracy.smoothed_correct += prediction.smoothed_label == first
        self.accuracy.recent.append(hit)

    def fps(self, now: float, span: float = 5.0) -> float:
        """Frames per second received over the last ``span`` seconds."""
        if not self.frame_arrivals:
            return 0.0
        elapsed = min(span, now - self.frame_arrivals[0])  # a new device: its time so far
        recent = sum(1 for t in self.frame_arrivals if now - t < span)
        return recent / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class DeviceView:
    """An immutable copy of one device's state for rendering."""

    device: str
    last_seen: float
    frames: int
    windows: int
    fps: float
    plot: list[PlotFrame]
    predictions: list[tuple[float, Prediction]]
    truths: list[GroundTruth]
    status: DeviceStatus | None
    accuracy: float | None
    recent_accuracy: float | None
    smoothed_accuracy: float | None
    judged: int
    skipped: int

    @classmethod
    def of(cls, state: DeviceState, now: float) -> DeviceView:
        """Copy ``state`` (called under the store's lock)."""
        acc = state.accuracy
        return cls(
            device=state.device,
            last_seen=state.last_seen,
            frames=state.frames,
            windows=state.windows,
            fps=state.fps(now),
            plot=list(state.plot),
            predictions=list(state.predictions),
            truths=list(state.truths),
            status=state.status,
            accuracy=acc.value,
            recent_accuracy=acc.recent_value,
            smoothed_accuracy=acc.smoothed_correct / acc.total if acc.total else None,
            judged=acc.total,
            skipped=acc.skipped,
        )

    @property
    def latest(self) -> Prediction | None:
        """The newest prediction, if any."""
        return self.predictions[-1][1] if self.predictions else None

    @property
    def truth(self) -> GroundTruth | None:
        """The newest ground truth, if any."""
        return self.truths[-1] if self.truths else None
