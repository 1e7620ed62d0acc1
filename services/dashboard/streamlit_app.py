"""The dashboard's Streamlit entry script: page set-up and navigation.

Run by ``har dashboard`` (``streamlit run`` on this file). Each page is a
script under ``views/``; the MQTT connection is shared by all of them.
"""

from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent

st.set_page_config(
    page_title="imu-har dashboard", page_icon=":material/fitness_center:", layout="wide"
)
page = st.navigation(
    [
        st.Page(
            HERE / "views" / "live.py", title="Live", icon=":material/monitoring:", default=True
        ),
        st.Page(
            HERE / "views" / "record.py", title="Record", icon=":material/radio_button_checked:"
        ),
        st.Page(HERE / "views" / "sessions.py", title="Sessions", icon=":material/folder_open:"),
        st.Page(HERE / "views" / "model.py", title="Model", icon=":material/model_training:"),
        st.Page(HERE / "views" / "system.py", title="System", icon=":material/dns:"),
    ]
)
page.run()
