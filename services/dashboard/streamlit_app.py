"""The dashboard's Streamlit entry script: page set-up, login gate and navigation.

Run by ``har dashboard`` (``streamlit run`` on this file). Each page is a
script under ``views/``; the MQTT connection is shared by all of them. With an
auth file (``--auth-file``) a browser session sees only the login page until it
has logged in: the page scripts are not even offered to ``st.navigation``.
"""

from pathlib import Path

import streamlit as st

from imu_har.runtime.logs import configure_logging
from services.dashboard import login, ui

HERE = Path(__file__).parent

st.set_page_config(
    page_title="imu-har dashboard", page_icon=":material/fitness_center:", layout="wide"
)
config = ui.load_settings()
configure_logging(config.log_level, "dashboard")  # logins and refusals reach the log (once)
problem = login.access_problem(config)
if problem is not None:
    st.error(problem)
    st.stop()
user = login.current_user(config)


def log_in() -> None:
    """The only page before a login."""
    login.form(config)


if user is None:
    page = st.navigation(
        [st.Page(log_in, title="Log in", icon=":material/login:", url_path="login")],
        position="hidden",
    )
else:
    if user:
        login.sidebar(user)
    page = st.navigation(
        [
            st.Page(
                HERE / "views" / "live.py", title="Live", icon=":material/monitoring:", default=True
            ),
            st.Page(
                HERE / "views" / "record.py",
                title="Record",
                icon=":material/radio_button_checked:",
            ),
            st.Page(
                HERE / "views" / "sessions.py", title="Sessions", icon=":material/folder_open:"
            ),
            st.Page(HERE / "views" / "train.py", title="Train", icon=":material/model_training:"),
            st.Page(HERE / "views" / "models.py", title="Models", icon=":material/deployed_code:"),
            st.Page(HERE / "views" / "phone.py", title="Phone", icon=":material/smartphone:"),
            st.Page(HERE / "views" / "system.py", title="System", icon=":material/dns:"),
        ]
    )
page.run()
