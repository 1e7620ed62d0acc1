"""Per-device label smoothing over the last ``k`` windows, ordered by ``window_seq``.

The smoothed label of window ``n`` of a device is computed from the windows
``n-k+1 .. n`` of that device that are known: by majority vote of their labels,
or by the label of their mean probabilities. History is keyed by ``window_seq``
(not arrival order), so it does not matter which replica classified a window or
in which order results arrive: replicas feed each other's published predictions
into :meth:`Smoother.add` and reach the same result. A sequence that jumps back
to an earlier number with a later start time means the windower restarted: that
device's history starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

UNKNOWN = "unknown"
Mode = Literal["majority", "mean"]


@dataclass
class _Entry:
    start: float
    probs: np.ndarray
    label: int  # index into labels, -1 for unknown


@dataclass
class _History:
    entries: dict[int, _Entry] = field(default_factory=dict)
    newest: int = -1
    newest_start: float = 0.0
    updated: float = 0.0


class Smoother:
    """Recent probabilities per device and the smoothed label they give."""

    def __init__(
        self, labels: list[str], k: int, mode: Mode, threshold: float, max_devices: int
    ) -> None:
        """Smooth over ``k`` windows (values from ``ClassifierSettings``, no defaults here)."""
        if k < 1:
            raise ValueError("smoothing k must be at least 1")
        self.labels = list(labels)
        self.k, self.mode, self.threshold, self.max_devices = k, mode, threshold, max_devices
        self._keep = 2 * k + 8  # tolerate some out-of-order arrival
        self._devices: dict[str, _History] = {}

    @property
    def devices(self) -> int:
        """Devices with history."""
        return len(self._devices)

    def label_of(self, probs: np.ndarray) -> int:
        """Index of the most probable label, or -1 when below the threshold."""
        best = int(np.argmax(probs))
        return best if float(probs[best]) >= self.threshold else -1

    def name(self, index: int) -> str:
        """Label name of an index from :meth:`label_of`."""
        return self.labels[index] if index >= 0 else UNKNOWN

    def add(
        self,
        device: str,
        seq: int,
        start: float,
        probs: np.ndarray,
        now: float = 0.0,
        label: int | None = None,
    ) -> None:
        """Record the probabilities of window ``seq`` (own result or another replica's).

        ``label`` is :meth:`label_of` of ``probs`` when the caller computed it already.
        """
        history = self._devices.get(device)
        if history is None:
            if len(self._devices) >= self.max_devices:
                oldest = min(self._devices, key=lambda d: self._devices[d].updated)
                del self._devices[oldest]
            history = self._devices[device] = _History()
        elif seq <= history.newest - self._keep:
            if start <= history.newest_start:
                return  # far too late to matter for any window still being smoothed
            history.entries.clear()  # the windower restarted its sequence
            history.newest = -1
        history.updated = now
        history.entries[seq] = _Entry(
            start, probs, self.label_of(probs) if label is None else label
        )
        if seq > history.newest:
            history.newest, history.newest_start = seq, start
            floor = seq - self._keep
            if len(history.entries) > self._keep:
                for old in [s for s in history.entries if s <= floor]:
                    del history.entries[old]

    def smoothed(self, device: str, seq: int) -> str:
        """The smoothed label of window ``seq`` from windows ``seq-k+1 .. seq`` known."""
        history = self._devices.get(device)
        if history is None:
            return UNKNOWN
        entries = history.entries
        recent = [entries[s] for s in range(seq - self.k + 1, seq + 1) if s in entries]
        if not recent:
            return UNKNOWN
        if len(recent) == 1:
            return self.name(recent[0].label)
        if self.mode == "mean":
            return self.name(self.label_of(np.mean([e.probs for e in recent], axis=0)))
        votes: dict[int, int] = {}
        for entry in recent:
            votes[entry.label] = votes.get(entry.label, 0) + 1
        top = max(votes.values())
        # ties go to the label of the most recent window among the tied ones
        for entry in reversed(recent):
            if votes[entry.label] == top:
                return self.name(entry.label)
        raise AssertionError("unreachable")

    def evict(self, before: float) -> int:
        """Forget devices not updated since ``before``; returns how many."""
        stale = [d for d, h in self._devices.items() if h.updated < before]
        for device in stale:
            del self._devices[device]
        return len(stale)

    def clear(self, labels: list[str] | None = None) -> None:
        """Forget everything (e.g. a model with other labels)."""
        self._devices.clear()
        if labels is not None:
            self.labels = list(labels)
