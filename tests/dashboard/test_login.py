"""The login gate under AppTest: nothing before a login, throttled failures, logout.

Each AppTest is one browser session (its own ``st.session_state``); the pages
read ``HAR_AUTH_FILE`` (the ``auth_file`` fixture) as under ``har dashboard``.
"""

from __future__ import annotations

import logging
import os

import pytest
from streamlit.testing.v1 import AppTest

from imu_har.protocol import topics
from imu_har.runtime.client import Collector
from services.dashboard import login
from tests.support import publish as pub
from tests.support.dashboard import (
    REPO,
    USERS,
    app,
    connection_of,
    log_in,
    page_title,
    texts,
    wait_until,
    write_auth_file,
)

pytestmark = pytest.mark.broker
PAGES = ("live", "record", "sessions", "train", "models", "system")


def shows_nothing_but_the_login_form(at: AppTest) -> bool:
    """Only the login page: its title and form, no page element, no download, no command."""
    widgets = {w.key for w in (*at.button, *at.text_input, *at.selectbox)}
    return (
        page_title(at) == "Log in"
        and widgets == {"login_submit", "login_user", "login_password"}
        and not at.metric
        and not at.dataframe
        and not at.get("download_button")
        and not at.get("vega_lite_chart")
        and not at.json
        and login.LOGIN_KEY not in at.session_state
    )


def test_no_page_before_a_login_and_wrong_passwords_are_refused(auth_file):
    at = app()
    assert not at.exception
    assert shows_nothing_but_the_login_form(at)
    for page in PAGES:  # the pages are not even registered for this session
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"views/{page}.py")
    log_in(at, "alice", USERS["bob"])
    assert "Wrong user name or password." in [e.value for e in at.error]
    assert shows_nothing_but_the_login_form(at)
    log_in(at, "mallory", USERS["alice"])  # unknown user: the same answer
    assert "Wrong user name or password." in [e.value for e in at.error]
    assert shows_nothing_but_the_login_form(at)


def test_the_right_password_shows_every_page_until_logout(auth_file):
    at = log_in(app(), "alice", USERS["alice"])
    assert not at.exception
    assert page_title(at) == "Live"
    assert "Logged in as **alice**" in texts(at)
    for page in PAGES:  # the login survives page switches within the session
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, page
        assert page_title(at) == page.capitalize(), page
        assert at.button(key="logout")
    at.switch_page("views/record.py").run()
    at.button(key="logout").click().run()
    assert shows_nothing_but_the_login_form(at)
    at.run()  # the session still asks for the Record page: it gets the login form
    assert shows_nothing_but_the_login_form(at)


def test_no_record_command_without_a_login(auth_file, dashboard_settings, mqtt_client):
    commands = Collector(mqtt_client, commands_topic())
    forged = app()  # a session that never logged in, with what a forged widget state would say
    forged.session_state["rec_device"] = "wrist-1"
    forged.session_state["rec_start"] = True
    forged.run()
    assert shows_nothing_but_the_login_form(forged)
    # a logged-in session does send the command: the checks here could fail
    at = log_in(app(), "bob", USERS["bob"])
    at.switch_page("views/record.py").run()
    conn = connection_of(dashboard_settings)  # connected: a command is sent, not skipped
    frame = pub.frame_payload("wrist-1", 0)
    pub.publish(mqtt_client, topics.IMU.format("har", device="wrist-1"), frame)
    wait_until(lambda: conn.store.device("wrist-1") is not None)  # offered on the page
    at.run()
    at.selectbox(key="rec_device").set_value("wrist-1")
    at.selectbox(key="rec_label").set_value("Squat")
    at.button(key="rec_start").click().run(timeout=30)  # no recorder: waits for no reply
    assert "No reply to `start`" in texts(at)
    assert b'"wrist-1"' in commands.wait_for(1, timeout=10)[0].payload
    at.button(key="logout").click().run()
    at.run()
    forged.run()
    assert shows_nothing_but_the_login_form(at) and shows_nothing_but_the_login_form(forged)
    # a marker on the dashboard's own connection arrives after anything it sent before
    conn.client.publish(commands_topic(), b"marker", qos=1)
    received = commands.wait_for(predicate=lambda msgs: msgs[-1].payload == b"marker")
    assert len(received) == 2  # the logged-in command and the marker, nothing else


def commands_topic() -> str:
    return topics.RECORDER_CMD.format("har")


def test_a_page_script_run_directly_draws_nothing_without_a_login(auth_file):
    for page in PAGES:
        at = AppTest.from_file(str(REPO / "services" / "dashboard" / "views" / f"{page}.py"))
        at.run(timeout=30)
        assert not at.exception, page
        assert not at.title and not at.button and not at.metric, page
        at.session_state[login.LOGIN_KEY] = login.Login("alice", 0.0)
        at.run(timeout=30)
        assert page_title(at) == page.capitalize(), page


def test_refreshing_fragments_check_the_login_too(auth_file):
    def script() -> None:
        import streamlit as st

        from services.dashboard import ui

        @ui.fragment(run_every=60)
        def secret() -> None:
            st.write("secret")

        secret()

    at = AppTest.from_function(script)
    at.run()
    assert not at.exception and not at.markdown
    at.session_state[login.LOGIN_KEY] = login.Login("alice", 0.0)
    at.run()
    assert [m.value for m in at.markdown] == ["secret"]


def test_a_widget_value_cannot_pose_as_a_login(auth_file):
    at = app()
    at.session_state[login.LOGIN_KEY] = {"user": "alice", "at": 0.0}  # not a Login
    at.run()
    assert page_title(at) == "Log in"
    at.session_state[login.LOGIN_KEY] = login.Login("mallory", 0.0)  # not in the file
    at.run()
    assert page_title(at) == "Log in"


def test_failed_attempts_are_throttled_per_session_and_per_user(auth_file, caplog):
    caplog.set_level(logging.WARNING, logger="services.dashboard.login")
    limit = login.throttle().failures
    first = app()
    for _ in range(limit):
        log_in(first, "alice", "guess")
    log_in(first, "alice", USERS["alice"])  # right, but too late
    assert any("Too many failed attempts" in e.value for e in first.error)
    assert page_title(first) == "Log in"
    log_in(first, "bob", USERS["bob"])  # this session is throttled for every user
    assert any("Too many failed attempts" in e.value for e in first.error)
    second = app()  # a new session: still throttled for alice
    log_in(second, "alice", USERS["alice"])
    assert any("Too many failed attempts" in e.value for e in second.error)
    log_in(second, "bob", USERS["bob"])  # but not for bob
    assert page_title(second) == "Live"
    failed = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(failed) == limit and all("for user 'alice'" in line for line in failed)
    assert any("refused for user 'alice'" in r.getMessage() for r in caplog.records)


def test_hostile_user_names_are_logged_as_repr(auth_file, caplog):
    caplog.set_level(logging.WARNING, logger="services.dashboard.login")
    forged = "eve\n2026-12-04 INFO dashboard login: user 'alice'"
    at = log_in(app(), forged, "x")
    assert page_title(at) == "Log in"
    lines = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and repr(forged) in lines[0]


def test_a_user_removed_from_the_file_is_logged_out(auth_file):
    at = log_in(app(), "alice", USERS["alice"])
    assert page_title(at) == "Live"
    write_auth_file(auth_file, {"bob": USERS["bob"]})
    os.utime(auth_file, ns=(1, 1))  # a different mtime even within the clock's resolution
    at.run()
    assert page_title(at) == "Log in"


def test_an_unusable_auth_file_locks_everyone_out(auth_file):
    at = log_in(app(), "alice", USERS["alice"])
    auth_file.write_text("alice:plain-text-password\n")
    at.run()
    assert page_title(at) == "Log in" and not at.text_input
    assert "The login file cannot be used" in texts(at)
    assert "plain-text-password" not in texts(at)


def test_without_an_auth_file_the_pages_are_open_on_loopback(dashboard_settings):
    at = app()
    assert not at.exception
    assert page_title(at) == "Live"
    assert "logout" not in {b.key for b in at.button}


def test_the_pages_refuse_the_network_without_a_login(dashboard_settings, monkeypatch):
    monkeypatch.setenv("HAR_ADDRESS", "0.0.0.0")
    at = app()
    assert not at.title and not at.button and not at.text_input
    assert "has no login" in texts(at)
    monkeypatch.setenv("HAR_ALLOW_ANONYMOUS", "true")
    assert page_title(app()) == "Live"
