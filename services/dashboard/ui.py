"""Shared page helpers: settings, the one cached connection, the broker banner.

Everything here runs on Streamlit's script thread.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from imu_har.protocol.commands import CommandReply
from services.dashboard import login
from services.dashboard.connection import Connection
from services.dashboard.settings import DashboardSettings, page_settings
from services.dashboard.store import Limits
from services.dashboard.text import md


def show_outcome(
    reply: CommandReply | None, no_reply: str, ok: Callable[[CommandReply], str], refused: str
) -> None:
    """A command's outcome: ``no_reply`` if none came, ``ok(reply)``, or ``refused: <error>``.

    The service's error text is untrusted: it is shown escaped (:func:`md`).
    """
    if reply is None:
        st.error(no_reply)
    elif reply.ok:
        st.success(ok(reply))
    else:
        st.error(f"{refused}: {md(reply.error)}")


def load_settings() -> DashboardSettings:
    """The dashboard settings; stops the run with an error when they are invalid."""
    try:
        return page_settings()
    except ValueError as exc:
        st.error(str(exc))
        st.stop()
        raise  # unreachable: st.stop() raises


def allowed(config: DashboardSettings) -> bool:
    """True when this browser session may see the pages (logged in, or no login needed)."""
    return login.access_problem(config) is None and login.current_user(config) is not None


def settings() -> DashboardSettings:
    """A page's settings; the page stops here, drawing nothing, unless :func:`allowed`.

    The entry script already shows only the login page until the session is
    logged in; this check keeps a page script safe however it is reached.
    """
    config = load_settings()
    if not allowed(config):
        st.stop()
    return config


def fragment(run_every: float) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """``st.fragment(run_every=...)`` that draws nothing unless the session is :func:`allowed`.

    A fragment rerun skips the entry script and the top of the page, so the
    fragment checks the login itself (after a logout, say).
    """

    def decorate(body: Callable[[], None]) -> Callable[[], None]:
        @functools.wraps(body)
        def gated() -> None:
            if allowed(load_settings()):
                body()

        return st.fragment(gated, run_every=run_every)

    return decorate


@st.cache_resource(show_spinner=False, on_release=Connection.close)
def _connection(settings_json: str) -> Connection:
    config = DashboardSettings.model_validate_json(settings_json)
    limits = Limits(max_devices=config.max_devices, idle_timeout=config.idle_timeout)
    return Connection(config, limits).start()


def connection(config: DashboardSettings | None = None) -> Connection:
    """The process-wide MQTT connection (created on first use, then reused)."""
    config = config or settings()
    return _connection(config.model_dump_json())


def ago(seconds: float) -> str:
    """A short human duration such as ``3 s`` or ``2 min``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def broker_banner(conn: Connection) -> bool:
    """Banner while the broker is unreachable (a note while first connecting); True if connected."""
    link = conn.state()
    if link.connected:
        return True
    if link.last_error is None:  # the first attempt is still under way: no alarm yet
        st.info(
            f"Connecting to the broker at {link.host}:{link.port}…", icon=":material/cloud_sync:"
        )
        return False
    reason = f" ({link.last_error})" if link.last_error else ""
    st.error(
        f"**Broker unreachable** at {link.host}:{link.port}{reason} — reconnecting "
        f"automatically (attempt {link.attempts}, down for {ago(time.time() - link.since)}). "
        "Values below are the last ones received.",
        icon=":material/cloud_off:",
    )
    return False


def chart(container: Any, data: Any, spec: dict[str, Any]) -> None:
    """Draw a Vega-Lite spec; its ``height`` is the whole chart's height on the page."""
    body = {k: v for k, v in spec.items() if k != "height"}
    container.vega_lite_chart(data, body, width="stretch", height=int(spec.get("height", 200)))


def fmt(value: float | None, pattern: str = "{:.1f}", none: str = "—") -> str:
    """Format a number, or ``—`` when there is none."""
    return none if value is None else pattern.format(value)
