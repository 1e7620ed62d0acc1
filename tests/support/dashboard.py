"""Dashboard test helpers: AppTest runs of the pages, the cached connection, page text, logins."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from services.dashboard import ui
from services.dashboard.auth import credential_line
from services.dashboard.connection import Connection
from services.dashboard.settings import DashboardSettings

REPO = Path(__file__).resolve().parents[2]


APP = REPO / "services" / "dashboard" / "streamlit_app.py"
USERS = {"alice": "correct horse battery", "bob": "staple-42"}  # the auth_file fixture's


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


def write_auth_file(path: Path, users: dict[str, str]) -> Path:
    """A login file with one line per ``user: password`` (made by the real generator code)."""
    lines = ["# dashboard users", ""] + [credential_line(u, p) for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def log_in(at: AppTest, user: str, password: str) -> AppTest:
    """Fill in and submit the login form of ``at``."""
    at.text_input(key="login_user").input(user)
    at.text_input(key="login_password").input(password)
    at.button(key="login_submit").click().run()
    return at


def page_title(at: AppTest) -> str | None:
    """The page's title (``Log in`` on the login page), if it drew one."""
    return at.title[0].value if at.title else None
