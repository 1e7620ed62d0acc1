"""Sessions page: recorded sessions, preview and download; relabel, exclude, reps, delete.

The listing reads the data directory (read-only); every change is a recorder
command on ``<root>/recorder/cmd`` (the recorder owns the directory).
"""

from pathlib import Path

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from imu_har.protocol import topics
from imu_har.protocol.commands import (
    DeleteSession,
    ExcludeSession,
    RelabelSession,
    SessionEdit,
    SetReps,
)
from services.dashboard import charts, sessions, ui
from services.dashboard.text import code, md

config = ui.settings()
st.title("Sessions")
st.caption(f"Recordings under {code(config.data_dir.resolve() / 'recordings')}")


@st.cache_data(ttl=5, show_spinner=False)
def listing(data_dir: str) -> list[sessions.SessionInfo]:
    """Sessions on disk, re-read at most every 5 s."""
    return sessions.find_sessions(Path(data_dir))


@st.cache_data(max_entries=8, show_spinner=False)
def preview(path: str, mtime: float) -> pd.DataFrame:
    """The first samples of a session (cached per file version)."""
    return sessions.load_preview(Path(path))


def send(command: SessionEdit) -> None:
    """Send an edit to the recorder; keep its reply (or the lack of one) for the page."""
    reply = ui.connection(config).request(topics.RECORDER_CMD, command, timeout=10.0)
    st.session_state["sessions_reply"] = (command.action, command.session, reply)
    if command.action == "delete" and reply is not None and reply.ok:
        st.session_state.pop("sessions_pick", None)  # the choice is gone
    listing.clear()


def show_reply() -> None:
    """The last edit's outcome."""
    if "sessions_reply" not in st.session_state:
        return
    action, session, reply = st.session_state["sessions_reply"]
    ui.show_outcome(
        reply,
        f"No reply to `{action}` from the recorder (is it running?)",
        lambda _: f"Recorder: {action} of {code(session)} ok",
        f"Recorder refused `{action}` of {code(session)}",
    )


def edit(info: sessions.SessionInfo) -> None:
    """Relabel, exclude from training, counted repetitions and delete, for one session."""
    name = info.session
    with st.container(border=True):
        st.markdown(f"**Edit** {code(name)}")
        c1, c2, c3, c4 = st.columns(4)
        label = c1.text_input("Label", value=info.label, key=f"edit_label_{name}")
        relabel = c1.button("Relabel", key="edit_relabel")
        reps = c2.number_input(
            "Repetitions counted", min_value=0, value=info.reps, step=1, key=f"edit_reps_{name}"
        )
        save_reps = c2.button("Save repetitions", key="edit_save_reps")
        c3.markdown("Left out of training" if info.excluded else "Used for training")
        toggle = c3.button(
            "Use for training" if info.excluded else "Leave out of training", key="edit_exclude"
        )
        confirm = c4.checkbox("Yes, delete this session", key=f"edit_confirm_{name}")
        delete = c4.button("Delete", key="edit_delete", disabled=not confirm)
    commands: list[SessionEdit] = []
    try:
        if relabel:
            commands.append(RelabelSession(action="relabel", session=name, label=label.strip()))
        if save_reps:
            count = None if reps is None else int(reps)
            commands.append(SetReps(action="set_reps", session=name, reps=count))
        if toggle:
            commands.append(
                ExcludeSession(action="exclude", session=name, excluded=not info.excluded)
            )
        if delete:
            commands.append(DeleteSession(action="delete", session=name))
    except ValidationError as exc:  # refused before anything is sent
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        st.error(f"Cannot send: {md(where)}: {md(problem['msg'])}")
        return
    for command in commands:
        send(command)
    if commands:
        st.rerun()  # the listing shows the change


found = listing(str(config.data_dir))
if st.button("Refresh", key="sessions_refresh"):
    listing.clear()
    found = listing(str(config.data_dir))
show_reply()
if not found:
    st.info("No recorded sessions yet. Start one on the Record page.")
    st.stop()

table = sessions.sessions_table(found)
counts = sessions.label_counts(found)
c1, c2, c3 = st.columns(3)
c1.metric("Sessions", len(found))
c2.metric("Rows", f"{int(table['rows'].sum()):,}")
c3.metric("Labels", len(counts))
left, right = st.columns([1, 2])
left.subheader("Per label")
left.dataframe(counts, hide_index=True)
right.subheader("Sessions")
right.dataframe(table, hide_index=True)

names = [s.session for s in found]
choice = st.selectbox("Preview session", names, key="sessions_pick")
info = next(s for s in found if s.session == choice)
first = info.paths[0]
if info.error:
    st.error(f"Cannot read {md(first.name)}: {md(info.error)}")
    st.stop()
st.caption(
    f"{md(info.device)} · {md(info.label)} · subject {md(info.subject or '—')} · "
    f"{info.rows:,} rows · "
    f"{ui.fmt(info.duration, '{:.1f} s')} · {len(info.paths)} file(s)"
    + (" · **left out of training**" if info.excluded else "")
    + ("" if info.reps is None else f" · {info.reps} repetitions counted")
)
try:
    data = preview(str(first), first.stat().st_mtime)
except (OSError, ValueError) as exc:
    st.error(f"Cannot preview {md(first.name)}: {md(exc)}")
else:
    x = str(data.index.name or "row")
    spec = charts.line_spec(list(data.columns), "value", height=320, x=x)
    data = data.rename_axis(x)
    ui.chart(st, data.reset_index(), spec)
st.download_button(
    "Download Parquet",
    data=lambda: sessions.session_bytes(info),
    file_name=f"{info.session}.parquet",
    mime="application/vnd.apache.parquet",
    key="sessions_download",
)
edit(info)
if info.manifest:
    with st.expander("Manifest"):
        st.json(info.manifest)
