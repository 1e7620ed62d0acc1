"""Record page: start and stop a labelled recording through the recorder's commands."""

import time

import streamlit as st
from pydantic import ValidationError

from imu_har.protocol import topics
from imu_har.protocol.commands import CommandReply, SetReps, StartRecording, StopRecording
from services.dashboard import recording, ui
from services.dashboard.text import code, md

config = ui.settings()
conn = ui.connection(config)
st.title("Record")
st.caption(
    f"Commands go to `{topics.RECORDER_CMD.format(conn.root)}`; "
    "the recorder writes labelled Parquet sessions."
)

snapshot = conn.store.snapshot()
spec = snapshot["model_spec"]
labels = list(spec.labels) if spec is not None else list(recording.DEFAULT_LABELS)
devices = snapshot["devices"]
recorder = snapshot["services"].get("recorder")
if recorder is None or recorder.state != "online":
    st.warning("The recorder service is not online: commands will get no reply.", icon="⚠️")

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    device = c1.selectbox(
        "Device", devices, key="rec_device", accept_new_options=True, placeholder="device id"
    )
    label = c2.selectbox("Exercise label", labels, key="rec_label", accept_new_options=True)
    subject = c3.text_input("Subject", key="rec_subject", placeholder="e.g. s01")
    c4, c5, c6 = st.columns(3)
    notes = c4.text_input("Notes", key="rec_notes")
    max_seconds = c5.number_input(
        "Stop automatically after (s, 0 = never)", min_value=0, value=0, step=10, key="rec_max"
    )
    reps = c6.number_input(
        "Repetitions counted (optional)",
        min_value=0,
        value=None,
        step=1,
        key="rec_reps",
        help="How many repetitions the person did, counted by hand: kept with the session "
        "(you can also enter it after the stop, below, or on the Sessions page)",
    )
    start_col, stop_col, _ = st.columns([1, 1, 4])
    start = start_col.button("Start recording", type="primary", key="rec_start")
    stop = stop_col.button("Stop recording", key="rec_stop")


def send(command: StartRecording | StopRecording | SetReps) -> CommandReply | None:
    """Send a command and keep the reply (or the lack of one) in the session."""
    reply = conn.request(topics.RECORDER_CMD, command, timeout=5.0)
    st.session_state["rec_reply"] = reply
    st.session_state["rec_reply_action"] = command.action
    st.session_state["rec_reply_at"] = time.time()
    return reply


try:
    if start:
        reply = send(
            StartRecording(
                action="start",
                device=device or "",
                label=label or "",
                subject=subject.strip() or None,
                notes=notes,
                max_seconds=float(max_seconds) or None,
                reps=None if reps is None else int(reps),
            )
        )
        if reply is not None and reply.ok:
            st.session_state["recording"] = {
                "session": str(reply.data.get("session", "")),
                "device": device,
                "label": label,
                "started": time.time(),
            }
    if stop:
        active = st.session_state.get("recording")
        target = active["device"] if active else device
        reply = send(StopRecording(action="stop", device=target or ""))
        if reply is not None and reply.ok:
            st.session_state.pop("recording", None)
            st.session_state["rec_last"] = str(reply.data.get("session", ""))
except ValidationError as exc:
    problem = exc.errors()[0]
    where = ".".join(str(p) for p in problem["loc"])
    st.error(f"Cannot send: {md(where)}: {md(problem['msg'])}")


def counted_reps(session: str) -> None:
    """After a stop: the repetitions counted in the session just recorded (``set_reps``)."""
    with st.container(border=True):
        c1, c2 = st.columns([2, 1])
        count = c1.number_input(
            f"Repetitions counted in {md(session)}",
            min_value=0,
            value=None,
            step=1,
            key=f"rec_last_reps_{session}",
        )
        if c2.button("Save repetitions", key="rec_save_reps", disabled=count is None):
            send(SetReps(action="set_reps", session=session, reps=int(count or 0)))


last = st.session_state.get("rec_last")
if last and "recording" not in st.session_state:
    try:
        counted_reps(last)
    except ValidationError as exc:
        st.error(f"Cannot send: {md(exc.errors()[0]['msg'])}")


def describe(data: dict[str, object]) -> str:
    """The interesting fields of a reply, e.g. ``session 2026…-wrist-1 · rows 1,234``."""
    keys = ("session", "device", "label", "subject", "rows", "stop_reason", "finalized", "reps")
    parts = [
        f"{k} {code(f'{data[k]:,}')}"
        if isinstance(data[k], int) and not isinstance(data[k], bool)
        else f"{k} {code(data[k])}"
        for k in keys
        if data.get(k) is not None
    ]
    return " · ".join(parts) or "done"


@ui.fragment(run_every=config.refresh)
def status() -> None:
    """The last reply, the elapsed time and the recorder's live row counts."""
    ui.broker_banner(conn)
    if "rec_reply_action" in st.session_state:
        reply = st.session_state.get("rec_reply")
        action = st.session_state["rec_reply_action"]
        ui.show_outcome(
            reply,
            f"No reply to `{action}` from the recorder (is it running?)",
            lambda r: f"Recorder: {action} ok — {describe(r.data)}",
            f"Recorder refused `{action}`",
        )
    recorder_status = conn.store.snapshot()["recorder_status"]
    active = st.session_state.get("recording")
    if active:
        rows = recording.session_rows(recorder_status, active["session"])
        c1, c2, c3 = st.columns(3)
        c1.metric("Recording", f"{md(active['device'])} · {md(active['label'])}")
        elapsed = int(time.time() - active["started"])
        c2.metric("Elapsed", f"{elapsed // 60}:{elapsed % 60:02d}")
        c3.metric("Rows", "—" if rows is None else f"{rows:,}")
        st.caption(f"Session {code(active['session'])}")
    sessions = recording.open_sessions(recorder_status)
    st.subheader("Open sessions")
    if sessions:
        st.dataframe(sessions, hide_index=True)
    else:
        st.caption("The recorder reports no open session.")


status()
