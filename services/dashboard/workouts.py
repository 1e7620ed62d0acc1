"""Per-device workouts for the Live page: the current set, its repetitions, today's sets.

Fed by :class:`services.dashboard.store.Store` under its lock with what ``har
workout`` publishes (docs/workout.md): the retained ``WorkoutState`` on
``<root>/<device>/workout`` (current set, repetitions so far, today's totals),
one ``RepEvent`` per repetition on ``<root>/<device>/rep`` and one ``SetEvent``
per finished set on ``<root>/<device>/set``. Everything is bounded (the
protocol bounds every field; here the number of repetitions and sets kept).
Pure: no Streamlit, no paho; the tables are plain data the page escapes or
shows as cells.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import pandas as pd

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.workout import RepEvent, SetEvent, WorkoutMessage, WorkoutState

MAX_REPS = 200  # recent repetitions kept per device (a long set is ~30; form of the current one)
MAX_SETS = 100  # finished sets kept per device (a long day of training)
FORM_MARK = {"correct": "✓", "incorrect": "✗", "unknown": "·"}


KINDS: dict[str, type[WorkoutMessage]] = {"workout": WorkoutState, "rep": RepEvent, "set": SetEvent}


def parse(kind: str, device: str, payload: bytes) -> WorkoutMessage | None:
    """The ``kind`` message of ``device`` (its topic's), validated; None for a cleared
    retained state. Raises :class:`PayloadError` (``bad_json``, ``device_mismatch``)."""
    if kind == "workout" and not payload:
        return None
    message = KINDS[kind].from_payload(payload)
    if message.device != device:
        raise PayloadError("device_mismatch", "payload device differs from the topic")
    return message


def local_date(when: float) -> str:
    """``YYYY-MM-DD`` of a Unix time in the dashboard's local time (the service's day)."""
    return time.strftime("%Y-%m-%d", time.localtime(when))


@dataclass
class WorkoutTrack:
    """What the dashboard keeps of one device's workout (bounded)."""

    state: WorkoutState | None = None
    reps: deque[RepEvent] = field(default_factory=lambda: deque(maxlen=MAX_REPS))
    sets: deque[SetEvent] = field(default_factory=lambda: deque(maxlen=MAX_SETS))

    def add(self, message: WorkoutMessage) -> bool:
        """Take a state, repetition or set; False for an event already kept."""
        if isinstance(message, RepEvent):
            return self.add_rep(message)
        if isinstance(message, SetEvent):
            return self.add_set(message)
        if self.state is not None and message.updated_at < self.state.updated_at:
            raise PayloadError("out_of_order", "workout state older than the last one")
        self.state = message
        return True

    def add_rep(self, rep: RepEvent) -> bool:
        """Keep a repetition; False for one already kept (a QoS 1 redelivery)."""
        if any(r.set == rep.set and r.rep == rep.rep and r.end == rep.end for r in self.reps):
            return False
        self.reps.append(rep)
        return True

    def add_set(self, done: SetEvent) -> bool:
        """Keep a finished set; False for one already kept."""
        if any(s.set == done.set and s.end == done.end for s in self.sets):
            return False
        self.sets.append(done)
        return True


@dataclass(frozen=True)
class WorkoutView:
    """An immutable copy of one device's workout for rendering."""

    state: WorkoutState | None
    reps: list[RepEvent]  # repetitions of the set under way, or of the last one while resting
    sets: list[SetEvent]  # today's finished sets, oldest first

    @classmethod
    def of(cls, track: WorkoutTrack, now: float) -> WorkoutView:
        """Copy ``track`` (called under the store's lock); "today" is the state's date."""
        state = track.state
        today = state.date if state is not None else local_date(now)
        sets = [s for s in track.sets if local_date(s.end) == today]
        current = state.set if state is not None else (track.reps[-1].set if track.reps else 0)
        exercise = state.exercise if state is not None and state.state == "set" else None
        reps = [
            r
            for r in track.reps
            if r.set == current and (exercise is None or r.exercise == exercise)
        ]
        return cls(state, reps, sets)

    @property
    def in_set(self) -> bool:
        """True while a set is under way."""
        return self.state is not None and self.state.state == "set"

    @property
    def empty(self) -> bool:
        """Nothing to show yet (no state, repetition or set of this device)."""
        return self.state is None and not self.reps and not self.sets

    def form_marks(self, limit: int = 40) -> str:
        """The form of each repetition of the current set, e.g. ``✓ ✓ ✗``, the newest last."""
        shown = self.reps[-limit:]
        more = "… " if len(self.reps) > limit else ""
        return more + " ".join(FORM_MARK[r.form] for r in shown)

    def totals(self) -> tuple[int, int, int]:
        """Today's (sets, repetitions, incorrect) over every exercise, from the state."""
        if self.state is None:
            return (
                len(self.sets),
                sum(s.reps for s in self.sets),
                sum(s.incorrect for s in self.sets),
            )
        values = self.state.totals.values()
        return (
            sum(t.sets for t in values),
            sum(t.reps for t in values),
            sum(t.incorrect for t in values),
        )


def sets_table(sets: list[SetEvent]) -> pd.DataFrame:
    """Today's sets as a table, newest first (cells are plain text, never Markdown)."""
    rows = [
        {
            "set": s.set,
            "exercise": s.exercise,
            "reps": s.reps,
            "incorrect": s.incorrect,
            "seconds": round(s.end - s.start, 1),
            "s per rep": round(s.mean_rep_seconds, 2),
            "ended": time.strftime("%H:%M:%S", time.localtime(s.end)),
        }
        for s in reversed(sets)
    ]
    columns = ["set", "exercise", "reps", "incorrect", "seconds", "s per rep", "ended"]
    return pd.DataFrame(rows, columns=columns)
