"""The recorder's retained status, as the Record page needs it (pure, no Streamlit)."""

from __future__ import annotations

from typing import Any

from imu_har.protocol.messages import RecorderStatus
from imu_har.sim.simulation import ACTIVITIES

DEFAULT_LABELS = ACTIVITIES  # offered when no model spec names the labels


def open_sessions(status: RecorderStatus | None) -> list[dict[str, Any]]:
    """The recorder's open sessions as table rows (empty when unknown)."""
    if status is None:
        return []
    keep = {"session", "device", "label", "subject", "rows", "seconds"}
    return [s.model_dump(include=keep) for s in status.recording]


def session_rows(status: RecorderStatus | None, session: str) -> int | None:
    """Rows written so far in ``session`` according to the recorder, if it is listed."""
    found = status.session(session) if status is not None else None
    return None if found is None else found.rows
