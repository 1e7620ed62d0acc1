"""One wearable as the bridge keeps it: its values for Home Assistant, and what went out.

Small and flat (one per wearable, at most ``--max-wearables``): the latest
exercise and confidence, the workout counts of the day, the last repetition's
form, the link, and for publishing the last state sent, when the next may go,
the availability and discovery last sent, and the event budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from imu_har.protocol.messages import DeviceStatus

ONLINE_LINKS = frozenset({"connected", "streaming"})
SOURCES = {"ble": "Bluetooth LE", "sim": "simulated", "replay": "replayed", "phone": "phone"}


def source_of(status: DeviceStatus) -> str:
    """The status's source if it is a known one, else ``other`` (no untrusted text is kept)."""
    return status.source if status.source in SOURCES else "other"


def seen_at(now: float, made: float | None, retained: bool) -> float:
    """When a message tells of its wearable: now, or when a retained one was made."""
    return min(now, max(0.0, made)) if retained and made is not None else now


def day_of(t: float) -> str:
    """The local calendar day of Unix time ``t``, as the workout service dates its totals."""
    return time.strftime("%Y-%m-%d", time.localtime(max(0.0, t)))


@dataclass(slots=True)
class Wearable:
    """What the bridge knows of one wearable and what it last published for it."""

    device: str
    node: str
    last_seen: float
    link: str = "disconnected"  # DeviceStatus.state; no status yet counts as disconnected
    link_at: float = 0.0  # when that status was made (retained) or received (live)
    source: str = "other"
    exercise: str = "unknown"
    confidence: int = 0  # %, in steps of --confidence-step
    reps: int = 0  # in the set under way (0 at rest)
    in_set: bool = False
    totals_date: str = ""  # the day of totals_reps/totals_sets (WorkoutState.date)
    totals_reps: int = 0
    totals_sets: int = 0
    form: str = "unknown"  # of the last repetition
    # -- what went out --------------------------------------------------------------------
    sent_state: bytes = b""
    next_state_at: float = 0.0  # the rate limit: no state message before this
    sent_available: bool | None = None
    discovered: tuple[int, str] | None = None  # (labels version, source) of the last discovery
    resend_at: float | None = None  # send the state again then (Home Assistant set it up)
    event_tokens: float = 0.0
    event_at: float = 0.0

    def effective_link(self, now: float, link_timeout: float) -> str:
        """The link, ``disconnected`` when an online status went stale (its gateway died)."""
        if self.link in ONLINE_LINKS and now - self.link_at > link_timeout:
            return "disconnected"
        return self.link

    def available(self, now: float, link_timeout: float) -> bool:
        """Whether the wearable's entities are available (besides the bridge being online)."""
        return self.effective_link(now, link_timeout) in ONLINE_LINKS

    def model(self) -> str:
        """The device model shown in Home Assistant."""
        return f"IMU wearable ({SOURCES.get(self.source, 'other source')})"

    def state(self, now: float, today: str, link_timeout: float) -> dict[str, Any]:
        """The JSON state message (every entity's ``value_template`` reads one field)."""
        counted = self.totals_date == today
        return {
            "exercise": self.exercise,
            "confidence": self.confidence,
            "reps": self.reps,
            "reps_today": self.totals_reps if counted else 0,
            "sets_today": self.totals_sets if counted else 0,
            "form": self.form,
            "in_set": self.in_set,
            "link": self.effective_link(now, link_timeout),
        }

    def take_event(self, now: float, rate: float) -> bool:
        """Spend one event from a bucket of ``max(1, rate)`` refilled at ``rate`` per second."""
        capacity = max(1.0, rate)
        self.event_tokens = min(capacity, self.event_tokens + max(0.0, now - self.event_at) * rate)
        self.event_at = now
        if self.event_tokens < 1.0:
            return False
        self.event_tokens -= 1.0
        return True
