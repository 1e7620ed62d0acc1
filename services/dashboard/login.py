"""The login page and each browser session's login (Streamlit side of :mod:`auth`).

Streamlit's own ``st.login`` only speaks OpenID Connect, so the dashboard
checks a user name and password against its login file (``--auth-file``) and
keeps the result in ``st.session_state``, which lives on the server, one per
browser session: it survives page switches and reruns, and a new tab logs in
again. The entry script shows only the login page until then (no page, no
download, no command), every page script and every refreshing fragment checks
again (:func:`services.dashboard.ui.settings`, :func:`services.dashboard.ui.fragment`).

Failed attempts are throttled per browser session and per user name (one
bounded :class:`auth.Throttle` for the whole process) and logged with the
user name as ``%r``.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from services.dashboard import auth
from services.dashboard.settings import LOOPBACK, DashboardSettings
from services.dashboard.text import md

logger = logging.getLogger(__name__)

LOGIN_KEY = "_har_login"
SESSION_KEY = "_har_login_session"  # throttle key of this browser session (kept at logout)


@dataclass(frozen=True)
class Login:
    """A successful login (only the server creates it: no widget can hold one)."""

    user: str
    at: float


@st.cache_resource(show_spinner=False)
def throttle() -> auth.Throttle:
    """The process-wide failed-login throttle (shared by every browser session)."""
    return auth.Throttle()


@st.cache_resource(show_spinner=False, max_entries=4)
def _users(path: str, mtime_ns: int, size: int) -> auth.Users:
    """The login file, read again when it changes (an error is raised, not cached)."""
    return auth.load_users(Path(path))


def users(config: DashboardSettings) -> auth.Users:
    """The users of ``config.auth_file``; :class:`auth.AuthFileError` when it cannot be used."""
    path = config.auth_file
    if path is None:
        raise auth.AuthFileError("no auth file configured")
    try:
        stat = path.stat()
    except OSError as exc:
        raise auth.AuthFileError(f"cannot read auth file {path}: {exc.strerror}") from None
    return _users(str(path), stat.st_mtime_ns, stat.st_size)


def access_problem(config: DashboardSettings) -> str | None:
    """Why this Streamlit process must serve nothing (anonymous beyond loopback), or None.

    ``har dashboard`` refuses to start in that case; this catches a page script
    started some other way (``streamlit run`` with ``HAR_*`` settings).
    """
    if config.auth_file is not None or config.allow_anonymous:
        return None
    served = st.get_option("server.address")  # None under AppTest and when not given
    if config.loopback and (served is None or served in LOOPBACK):
        return None
    return (
        "This dashboard is reachable beyond this machine but has no login: set "
        "--auth-file (or --allow-anonymous)."
    )


def current_user(config: DashboardSettings) -> str | None:
    """The logged-in user, ``""`` when no login is required, None when one is needed."""
    if config.auth_file is None:
        return ""
    login = st.session_state.get(LOGIN_KEY)
    if not isinstance(login, Login):
        return None
    try:
        known = users(config)
    except auth.AuthFileError:
        return None  # fail closed; the login page says why
    if login.user not in known:  # removed from the file since: log out
        logger.warning("dashboard user %r is no longer in the auth file: logged out", login.user)
        del st.session_state[LOGIN_KEY]
        return None
    return login.user


def _session_key() -> tuple[str, str]:
    if SESSION_KEY not in st.session_state:
        st.session_state[SESSION_KEY] = secrets.token_hex(8)
    return ("session", str(st.session_state[SESSION_KEY]))


def _client() -> str:
    """The browser's address for the log (Streamlit gives None for this machine)."""
    return str(st.context.ip_address or "this machine")


def form(config: DashboardSettings) -> None:
    """The login page: user name and password, checked against the login file."""
    st.title("Log in")
    try:
        known = users(config)
    except auth.AuthFileError as exc:
        logger.error("dashboard login impossible: %s", exc)
        st.error("The login file cannot be used; see the dashboard's log.")
        return
    with st.form("login_form", clear_on_submit=True):
        user = st.text_input("User name", key="login_user", max_chars=64, autocomplete="username")
        password = st.text_input(
            "Password",
            type="password",
            key="login_password",
            max_chars=auth.MAX_PASSWORD,
            autocomplete="current-password",
        )
        submitted = st.form_submit_button("Log in", type="primary", key="login_submit")
    if submitted:
        attempt(known, user, password)


def attempt(known: auth.Users, user: str, password: str) -> None:
    """Check one login attempt (throttled); on success store it and rerun into the pages."""
    now, name = time.time(), user[:64]
    keys = [_session_key(), ("user", name)]
    wait = throttle().retry_after(keys, now)
    if wait > 0:
        logger.warning(
            "dashboard login refused for user %r from %s: too many failed attempts",
            name,
            _client(),
        )
        st.error(f"Too many failed attempts: try again in {math.ceil(wait)} s.")
        return
    if known.verify(user, password):
        throttle().succeeded(keys)
        st.session_state[LOGIN_KEY] = Login(user, now)
        logger.info("dashboard login: user %r from %s", user, _client())
        st.rerun()
    throttle().failed(keys, now)
    logger.warning("dashboard login failed for user %r from %s", name, _client())
    st.error("Wrong user name or password.")


def _logout() -> None:
    login = st.session_state.get(LOGIN_KEY)
    session = st.session_state.get(SESSION_KEY)
    st.session_state.clear()  # the page state (recording, last reply) goes too
    if session is not None:
        st.session_state[SESSION_KEY] = session
    if isinstance(login, Login):
        logger.info("dashboard logout: user %r", login.user)


def sidebar(user: str) -> None:
    """Who is logged in, and the logout button (on every page)."""
    with st.sidebar:
        st.caption(f"Logged in as **{md(user)}**")
        st.button("Log out", key="logout", icon=":material/logout:", on_click=_logout)
