"""Live page: per device, scrolling IMU plots, the current exercise and live accuracy, and the
workout (``har workout``): the current set, its repetitions as they happen, the form of each,
and today's sets."""

import time

import streamlit as st

from services.dashboard import charts, ui
from services.dashboard.store import DeviceView, WorkoutView
from services.dashboard.text import code, md
from services.dashboard.workouts import sets_table

MAX_SHOWN = 4
config = ui.settings()
conn = ui.connection(config)
st.title("Live")


def render_workout(workout: WorkoutView) -> None:
    """The set under way (or the last one), its repetitions and their form, today's sets."""
    state, cols = workout.state, st.columns(4)
    if workout.in_set and state is not None:
        cols[0].metric("Set", f"{md(state.exercise)} · set {state.set}", help="Under way")
        cols[1].metric("Repetitions", str(state.reps), help="In this set, as they happen")
    else:
        last = workout.reps[-1] if workout.reps else None
        about = f"Last: set {last.set}, {md(last.exercise)}" if last else "No set yet"
        cols[0].metric("Set", "resting", help=about)
        cols[1].metric("Last set", f"{len(workout.reps)} reps" if last else "—")
    sets, reps, incorrect = workout.totals()
    cols[2].metric("Today", f"{sets} sets · {reps} reps", help="Every exercise (har workout)")
    cols[3].metric("Incorrect form", str(incorrect), help="Repetitions judged incorrect today")
    if workout.reps:
        last = workout.reps[-1]
        st.caption(
            f"Form per repetition, set {last.set} ({md(last.exercise)}): "
            f"{workout.form_marks()} (✓ correct, ✗ incorrect, · unknown)"
        )
    if workout.sets:
        st.dataframe(sets_table(workout.sets), hide_index=True)


def render_device(view: DeviceView, now: float) -> None:
    """One device: metrics, probability bars, timeline and IMU plots."""
    status = view.status
    state = f" · {md(status.state)} ({md(status.source)})" if status else ""
    st.subheader(f"{md(view.device)}{state}")
    latest = view.latest
    cols = st.columns(6)
    if latest is not None:
        cols[0].metric("Exercise", md(latest.smoothed_label), help="Smoothed over recent windows")
        cols[1].metric("Confidence", f"{latest.confidence:.0%}", help=f"Raw: {md(latest.label)}")
        st.caption(f"Model {code(latest.model)} · version {code(latest.model_version[:12])}")
    else:
        cols[0].metric("Exercise", "—", help="No prediction yet")
        cols[1].metric("Confidence", "—")
    cols[2].metric("Frames/s", f"{view.fps:.1f}")
    classifier_ms, total_ms = charts.latency_ms(view)
    cols[3].metric(
        "Latency", ui.fmt(classifier_ms, "{:.1f} ms"), help="Classifier: window in to prediction"
    )
    cols[4].metric(
        "Frame to screen", ui.fmt(total_ms, "{:.0f} ms"), help="Newest frame to dashboard"
    )
    if view.truth is not None:
        cols[5].metric(
            "Live accuracy",
            ui.fmt(view.accuracy, "{:.0%}"),
            help=f"{view.judged} windows judged against the truth "
            f"({view.skipped} skipped: rest or activity change); "
            f"last 50: {ui.fmt(view.recent_accuracy, '{:.0%}')}",
        )
        st.caption(
            f"Truth: **{md(view.truth.label)}** (rep {view.truth.rep}) · "
            f"smoothed accuracy {ui.fmt(view.smoothed_accuracy, '{:.0%}')} · "
            f"last 50: {ui.fmt(view.recent_accuracy, '{:.0%}')}"
        )
    left, right = st.columns([1, 2])
    if latest is not None:
        ui.chart(left, *charts.probabilities_chart(latest))
        table = charts.timeline_table(view.predictions, view.truths, now)
        ui.chart(right, *charts.timeline_chart(table, config.history * 6))
    workout = conn.store.workout(view.device, now)
    if workout is not None and not workout.empty:
        render_workout(workout)
    groups = charts.imu_frames(view.plot, now, config.history)
    if groups:
        for column, (unit, data) in zip(st.columns(len(groups)), groups.items(), strict=True):
            column.caption(f"{md(', '.join(data.columns))} ({md(unit)})")
            ui.chart(column, data.reset_index(), charts.line_spec(list(data.columns), unit))
    else:
        st.caption("No IMU frames in the last seconds.")


@ui.fragment(run_every=config.refresh)
def live() -> None:
    """Redrawn every ``refresh`` seconds from the store."""
    ui.broker_banner(conn)
    now = time.time()
    conn.store.evict_idle(now)
    devices = conn.store.devices()
    if not devices:
        st.info(f"Waiting for devices on `{conn.root}/#` …")
        return
    shown = devices
    if len(devices) > MAX_SHOWN:
        pick = st.selectbox("Device", devices, key="live_device")
        shown = [pick]
    for device in shown:
        view = conn.store.device(device, now)
        if view is not None:
            with st.container(border=True):
                render_device(view, now)


live()
