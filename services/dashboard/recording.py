"""Read the recorder's retained status tolerantly (pure, no Streamlit).

The recorder publishes ``<root>/recorder/status`` (retained JSON) with its open
sessions and their row counts; this turns any reasonable shape of it into a
list of ``{"session", "device", "label", "rows", "started_at"}`` dicts.
"""

from __future__ import annotations

from typing import Any

DEFAULT_LABELS = (
    "Pushup",
    "Pushup_Incorrect",
    "Squat",
    "Situp",
    "Situp_Incorrect",
    "Jumping",
    "Lunge",
)
_KEYS = ("open", "sessions", "open_sessions", "recording", "recordings")


def _entries(status: dict[str, Any]) -> list[Any]:
    for key in _KEYS:
        value = status.get(key)
        if isinstance(value, list):
            return value
        if isinstance(value, dict):
            return [
                {"session": name, **item} if isinstance(item, dict) else {"session": name}
                for name, item in value.items()
            ]
    return []


def open_sessions(status: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The recorder's open sessions from its status payload (empty when unknown)."""
    if not isinstance(status, dict):
        return []
    found = []
    for item in _entries(status):
        if not isinstance(item, dict):
            continue
        rows = item.get("rows", item.get("row_count", 0))
        found.append(
            {
                "session": str(item.get("session", item.get("id", ""))),
                "device": str(item.get("device", "")),
                "label": str(item.get("label", "")),
                "rows": int(rows) if isinstance(rows, int | float) else 0,
                "started_at": item.get("started_at"),
            }
        )
    return found


def session_rows(status: dict[str, Any] | None, session: str) -> int | None:
    """Rows written so far in ``session`` according to the recorder, if it is listed."""
    for item in open_sessions(status):
        if item["session"] == session:
            return int(item["rows"])
    return None
