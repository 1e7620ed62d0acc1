"""Train page: pick recorded sessions, see their seconds and windows per label, train, follow.

Sessions are read from the data directory (read-only). *Train* sends the
trainer's ``train`` command (``<root>/trainer/cmd``) with the chosen session ids
and the settings; progress comes from the trainer's retained
``<root>/trainer/status``; *Cancel* sends ``cancel``. The finished model is
activated on the Models page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from imu_har.protocol import topics
from imu_har.protocol.trainer import MAX_SELECTION, CancelJob, JobProgress, TrainCommand
from services.dashboard import selection, sessions, ui
from services.dashboard.text import code, md
from training.params import ARCHITECTURES

HERE = Path(__file__).parent
config = ui.settings()
conn = ui.connection(config)
st.title("Train")
st.caption(
    f"Sessions under {code(config.data_dir.resolve() / 'recordings')}; commands go to "
    f"{code(topics.TRAINER_CMD.format(conn.root))}."
)


@st.cache_data(ttl=5, show_spinner=False)
def listing(data_dir: str) -> list[sessions.SessionInfo]:
    """Sessions on disk, re-read at most every 5 s."""
    return sessions.find_sessions(Path(data_dir))


@st.cache_data(max_entries=4096, show_spinner=False)
def session_stats(
    paths: tuple[str, ...], mtimes: tuple[float, ...], window: int, hop: int, rate: float
) -> tuple[float, int]:
    """Seconds and windows of one session at this geometry (cached per file version)."""
    times, _ = selection.read_session([Path(p) for p in paths])
    seconds = float(times.max() - times.min()) if len(times) else 0.0
    return seconds, selection.count_windows(times, window, hop, rate)


@st.cache_data(max_entries=4096, show_spinner=False)
def session_rates(paths: tuple[str, ...], mtimes: tuple[float, ...]) -> dict[float, int]:
    """Rows per ``rate`` value of one session."""
    return selection.rate_counts(selection.read_session([Path(p) for p in paths])[1])


def file_key(info: sessions.SessionInfo) -> tuple[tuple[str, ...], tuple[float, ...]]:
    paths = tuple(str(p) for p in info.paths)
    return paths, tuple(p.stat().st_mtime for p in info.paths)


def trainer_online() -> bool:
    status = conn.store.snapshot()["services"].get("trainer")
    return status is not None and status.state == "online"


def pick_sessions(
    found: list[sessions.SessionInfo],
) -> tuple[selection.Choice, list[sessions.SessionInfo]]:
    """Filters by label, subject and device; excluded sessions are never offered."""
    usable = [s for s in found if not s.excluded and s.error is None]
    c1, c2, c3 = st.columns(3)
    labels = c1.multiselect("Labels", sorted({s.label for s in usable}), key="train_labels")
    subjects = c2.multiselect(
        "Subjects", sorted({s.subject for s in usable if s.subject}), key="train_subjects"
    )
    devices = c3.multiselect("Devices", sorted({s.device for s in usable}), key="train_devices")
    choice = selection.Choice(tuple(labels), tuple(subjects), tuple(devices))
    left_out = len(found) - len(usable)
    if left_out:
        st.caption(f"{left_out} session(s) left out of training or unreadable (Sessions page).")
    return choice, selection.chosen(usable, choice)


def settings_form(
    spec_default: selection.Geometry,
) -> tuple[selection.Geometry, dict, str | int, str]:
    """Window geometry, architecture, epochs, units, validation and the model name."""
    d = selection.DEFAULTS
    c1, c2, c3, c4 = st.columns(4)
    window = c1.number_input("Window (samples)", 2, 4096, spec_default.window, key="train_window")
    hop = c2.number_input("Hop (samples)", 1, 4096, spec_default.hop, key="train_hop")
    rate = c3.number_input(
        "Rate (Hz, 0 = the data's)",
        0.0,
        10_000.0,
        float(spec_default.rate or 0.0),
        key="train_rate",
        help="Defaults to the live model's window, hop and rate",
    )
    name = c4.text_input("Model name", "mine", key="train_name")
    c5, c6, c7, c8 = st.columns(4)
    arch = c5.selectbox(
        "Architecture", ARCHITECTURES, ARCHITECTURES.index(d.arch), key="train_arch"
    )
    epochs = c6.number_input("Epochs", 1, 1000, d.epochs, key="train_epochs")
    units = c7.number_input("Units", 1, 1024, d.units, key="train_units")
    cv_choice = c8.selectbox(
        "Grouped validation",
        ["subject", "session", "K folds"],
        key="train_cv",
        help="Folds keep whole subjects (or sessions) apart: the score says how the model "
        "does on people (or recordings) it never saw",
    )
    cv: str | int = cv_choice
    if cv_choice == "K folds":
        cv = int(st.number_input("K", 2, 100, 5, key="train_k"))
    geometry = selection.Geometry(int(window), int(hop), float(rate) or None)
    params = {"arch": arch, "epochs": int(epochs), "units": int(units)}
    return geometry, params, cv, name.strip()


def counts_of(
    picked: list[sessions.SessionInfo], geometry: selection.Geometry
) -> tuple[list[selection.SessionCount], float | None]:
    """Per chosen session: seconds and windows at the geometry (the data's rate if none).

    A session whose files are gone (deleted since the listing) or unreadable is named and
    left out of the counts.
    """
    readable = []
    for info in picked:
        try:
            key = file_key(info)
            readable.append((info, key, session_rates(*key)))
        except (OSError, ValueError) as exc:  # pyarrow's errors are OSError or ValueError
            st.warning(f"Session {code(info.session)} cannot be read: {md(exc)}")
    rate = geometry.rate or selection.data_rate(rates for _, _, rates in readable)
    if rate is None:
        return [], None
    out = []
    for info, key, _ in readable:
        seconds, windows = session_stats(*key, geometry.window, geometry.hop, rate)
        out.append(selection.SessionCount(info.session, info.label, info.subject, seconds, windows))
    return out, rate


def start(command: TrainCommand) -> None:
    reply = conn.request(topics.TRAINER_CMD, command, timeout=10.0)
    st.session_state["train_reply"] = ("train", reply)
    if reply is not None and reply.ok:
        st.session_state["train_job"] = str(reply.data.get("job", ""))


def progress(job: JobProgress) -> tuple[float, str]:
    """Fraction done and a line saying where the job is."""
    epochs = job.epochs or 1
    folds = job.folds or 0
    done = {"starting": 0.0, "loading": 0.01, "export": 0.97, "done": 1.0}.get(job.phase)
    epoch = job.epoch or 0
    if done is None:  # cv or fit: count epochs over the folds and the final fit
        before = (job.fold or 1) - 1 if job.phase == "cv" else folds
        done = 0.02 + 0.95 * (before * epochs + epoch) / ((folds + 1) * epochs)
    where = f"phase **{md(job.phase)}**"
    if job.phase == "cv" and job.fold:
        where += f" · fold {job.fold}/{job.folds}"
    if job.epoch:
        where += f" · epoch {job.epoch}/{job.epochs}"
    if job.eta is not None and job.state == "running":
        where += f" · about {ui.ago(job.eta)} left"
    return min(max(done, 0.0), 1.0), where + f" · {ui.ago(job.elapsed)} elapsed"


@ui.fragment(run_every=max(config.refresh, 1.0))
def status() -> None:
    """The trainer's job: progress bar, phase, time left, result; Cancel while it runs."""
    ui.broker_banner(conn)
    if "train_reply" in st.session_state:
        action, reply = st.session_state["train_reply"]
        if reply is None:
            st.error(f"No reply to `{action}` from the trainer (is it running?)")
        elif not reply.ok:
            st.error(f"Trainer refused `{action}`: {md(reply.error)}")
    trainer = conn.store.snapshot()["trainer_status"]
    job = trainer.job if trainer is not None else None
    if job is None:
        st.caption("No training job yet.")
        return
    st.subheader(f"Job {md(job.job)} · {md(job.name)} · {md(job.state)}")
    fraction, where = progress(job)
    st.progress(fraction, text=where)
    st.caption(f"{job.sessions} sessions · folds keep {md(job.grouping)}s apart")
    if job.state == "running":
        if st.button("Cancel training", key="train_cancel"):
            reply = conn.request(topics.TRAINER_CMD, CancelJob(action="cancel", job=job.job))
            st.session_state["train_reply"] = ("cancel", reply)
    elif job.state == "failed":
        st.error(f"Training failed: {md(job.error)}")
    elif job.state == "done" and job.result:
        show_result(job.result)


def show_result(result: dict) -> None:
    """Where the model is and its grouped score; activation is on the Models page."""
    cv = result.get("cv") if isinstance(result.get("cv"), dict) else {}
    accuracy = cv.get("mean_accuracy") if isinstance(cv, dict) else None
    score = f" · grouped accuracy {accuracy:.3f}" if isinstance(accuracy, float) else ""
    st.success(f"Model ready: {code(result.get('artifact', '—'))}{score}")
    st.page_link(str(HERE / "models.py"), label="Activate it on the Models page", icon="➡️")


found = listing(str(config.data_dir))
if not trainer_online():
    st.warning("The trainer service is not online: training commands will get no reply.")
if not found:
    st.info("No recorded sessions yet. Record some on the Record page.")
    status()
    st.stop()
choice, picked = pick_sessions(found)
live_spec = conn.store.snapshot()["model_spec"]
geometry, params, cv, name = settings_form(selection.default_geometry(live_spec))
counts, rate = counts_of(picked, geometry)
st.subheader(f"{len(picked)} sessions chosen")
if rate is None:
    st.warning("The sessions have no `rate` column: give the rate.")
else:
    st.caption(f"Windows of {geometry.window} samples every {geometry.hop} at {rate:g} Hz")
st.dataframe(selection.label_table(counts), hide_index=True)
for text in selection.problems(counts, cv):
    st.warning(md(text))
with st.expander("Chosen sessions"):
    st.dataframe(pd.DataFrame([c.__dict__ for c in counts]), hide_index=True)
if st.button("Train", type="primary", key="train_start", disabled=not picked):
    try:
        ids = [s.session for s in picked]
        few = len(ids) <= MAX_SELECTION  # else the filter: the trainer skips excluded sessions
        command = TrainCommand(
            action="train",
            name=name,
            sessions=ids if few else None,
            filter=None if few else choice.as_filter(),
            params=params | {"window": geometry.window, "hop": geometry.hop, "rate": geometry.rate},
            cv=cv,  # "subject", "session" or K: validated by TrainCommand
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        st.error(f"Cannot send: {md(where)}: {md(problem['msg'])}")
    else:
        start(command)
status()
