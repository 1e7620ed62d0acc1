"""Dashboard test helpers: AppTest runs of the pages, the cached connection, page text."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from services.dashboard import ui
from services.dashboard.app import DashboardSettings
from services.dashboard.connection import Connection

REPO = Path(__file__).resolve().parents[2]


APP = REPO / "services" / "dashboard" / "streamlit_app.py"


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def app(page: str | None = None) -> AppTest:
    """A fresh AppTest of the dashboard, run once (on ``page`` if given)."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    return at


def connection_of(settings: DashboardSettings) -> Connection:
    """The connection the pages created (the same cached object), once subscribed."""
    conn = ui._connection(settings.model_dump_json())
    wait_until(conn.subscribed.is_set)
    return conn


def texts(at) -> str:  # type: ignore[no-untyped-def]
    """All visible text of markdown, captions, alerts and subheaders, joined."""
    parts = [e.value for e in (*at.markdown, *at.caption, *at.subheader, *at.title)]
    parts += [e.value for e in (*at.info, *at.error, *at.warning, *at.success)]
    return "\n".join(str(p) for p in parts)


def metrics(at) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {m.label: m.value for m in at.metric}
