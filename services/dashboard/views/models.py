"""Models page: the live model, every trained artifact with its grouped scores, activate, roll back.

The live model is the retained ``har/model/spec`` and the classifier's status.
Artifacts come from the trainer's ``list`` reply while the trainer is online,
else from the models directory (``--models-dir``). *Activate* sends the
classifier's ``reload`` command; *Roll back* reloads the artifact the
classifier served before the live one.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from imu_har.protocol import topics
from imu_har.protocol.commands import ClassifierCommand, CommandReply
from services.dashboard import artifacts, charts, models, ui
from services.dashboard.text import code, md

MAX_CONFUSION_LABELS = 64  # a bigger matrix is shown as a table only (a 256 KiB spec holds ~250)
RELOAD_TIMEOUT = 60.0  # s: the classifier answers once the new model is loaded and probed

config = ui.settings()
conn = ui.connection(config)
st.title("Models")


def scalar_metrics(metrics: dict[str, object]) -> dict[str, float]:
    """The plain numeric metrics (accuracy, f1, ...), training accuracy left out."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k not in models.NOT_SCORES
    }


def render_confusion(labels: list[str], matrix: object, title: str = "Confusion matrix") -> None:
    """A confusion matrix as a heat map (and its table), when it is well formed."""
    try:
        table = charts.confusion_table(matrix, labels)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        st.warning(f"The model's confusion matrix is unreadable: {md(exc)}")
        return
    st.subheader(title)
    if len(table) > MAX_CONFUSION_LABELS:
        st.dataframe(table)
        return
    left, right = st.columns([3, 2])
    ui.chart(left, *charts.confusion_chart(table))
    right.dataframe(table)


def live_model(snapshot: dict) -> None:
    """The retained model spec and the classifier's status details."""
    spec = snapshot["model_spec"]
    if spec is None:
        st.info(f"No model published on `{topics.MODEL_SPEC.format(conn.root)}` yet.")
    else:
        st.subheader(f"{md(spec.name)} · version {md(spec.version[:12])}")
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Window", f"{spec.window} samples")
        c2.metric("Hop", f"{spec.hop} samples")
        c3.metric("Rate", f"{spec.rate:g} Hz")
        c4.metric("Window length", f"{spec.window / spec.rate:.2f} s")
        st.markdown("**Labels:** " + ", ".join(code(label) for label in spec.labels))
        st.markdown("**Channels:** " + ", ".join(code(c) for c in spec.channels))
        st.caption(f"Architecture {md(spec.architecture)} · created {md(spec.created_at or '—')}")
        numbers = scalar_metrics(spec.metrics) | models.grouped_scores(spec.metrics)
        if numbers:
            st.subheader("Metrics")
            for column, (name, value) in zip(
                st.columns(min(len(numbers), 6)), list(numbers.items())[:6], strict=False
            ):
                column.metric(md(name), f"{value:.3f}")
        found = models.confusion(spec.metrics, list(spec.labels))
        if found is not None:
            render_confusion(*found)
        with st.expander("Full spec"):
            st.json(spec.model_dump(mode="json"))
    classifier = snapshot["services"].get("classifier")
    st.subheader("Classifier service")
    if classifier is None:
        st.caption("No classifier status received.")
    else:
        st.markdown(f"State: **{md(classifier.state)}** · instance {code(classifier.instance)}")
        st.json(classifier.details, expanded=True)


def reload(path: str, why: str) -> None:
    """Send the classifier's reload command for ``path``; keep the reply for the page."""
    command = ClassifierCommand(action="reload", model=path)
    with st.spinner(f"Loading {path} in the classifier…"):
        reply = conn.request(topics.CLASSIFIER_CMD, command, timeout=RELOAD_TIMEOUT)
    st.session_state["models_reply"] = (why, path, reply)


def show_reply() -> None:
    """The outcome of the last activate or roll back."""
    if "models_reply" not in st.session_state:
        return
    why, path, reply = st.session_state["models_reply"]

    def served(reply: CommandReply) -> str:
        model = reply.data.get("model")
        version = model.get("version", "") if isinstance(model, dict) else ""
        return f"Classifier: {why} ok — now serving {code(path)} {code(str(version)[:12])}"

    no_reply = f"No reply from the classifier to {why} {code(path)} (is it running?)"
    ui.show_outcome(reply, no_reply, served, f"Classifier refused to {why} {code(path)}")


def render_artifact(artifact: models.Artifact, live: str | None) -> None:
    """One artifact: what it was trained on, its grouped scores, confusion matrix, Activate."""
    st.markdown(
        f"**{md(artifact.name)}** · version {code(artifact.version[:12])} · "
        f"created {md(artifact.created_at or '—')} · {md(artifact.architecture)} · "
        f"window {md(artifact.geometry)}"
    )
    if artifact.error:
        st.error(f"Unreadable artifact: {md(artifact.error)}")
        return
    st.markdown("**Labels:** " + ", ".join(code(label) for label in artifact.labels))
    seen = artifact.trained_on
    st.caption(
        f"Trained on {seen.get('windows', '—')} windows from {seen.get('sessions', '—')} "
        f"sessions, {seen.get('subjects', '—')} subjects"
    )
    if artifact.scores:
        columns = st.columns(min(len(artifact.scores), 5))
        for column, (name, value) in zip(columns, list(artifact.scores.items())[:5], strict=False):
            column.metric(md(name.capitalize()), f"{value:.3f}")
        st.caption(f"Measured by {md(artifact.method or 'held-out data')}; never training accuracy")
    else:
        st.warning("No grouped validation scores: trained without cross-validation.")
    if artifact.confusion is not None:
        render_confusion(*artifact.confusion, title="Grouped-validation confusion matrix")
    if artifact.path == live:
        st.success("This model is live.", icon=":material/check_circle:")
    elif st.button("Activate", type="primary", key="models_activate"):
        reload(artifact.path, "activate")
        st.rerun()


@ui.fragment(run_every=max(config.refresh, 2.0))
def live_section() -> None:
    """Redrawn from the store: the live model."""
    ui.broker_banner(conn)
    live_model(conn.store.snapshot())


live_section()
snapshot = conn.store.snapshot()
classifier = snapshot["services"].get("classifier")
live = models.live_path(classifier.details) if classifier is not None else None
st.divider()
st.header("Trained models")
show_reply()
history = [p for p in snapshot["model_history"] if p != live]
if history and st.button(f"Roll back to {md(history[-1])}", key="models_rollback"):
    reload(history[-1], "roll back to")
    st.rerun()
listing = artifacts.listing(conn, config)
st.caption(listing.source)
if not listing.artifacts:
    st.info("No trained models yet. Train one on the Train page.")
    st.stop()
table = pd.DataFrame([a.row() | {"live": a.path == live} for a in listing.artifacts])
st.dataframe(table, hide_index=True)
names = [a.path for a in listing.artifacts]
pick = st.selectbox(
    "Model", names, key="models_pick", format_func=lambda p: p.rsplit("/", 1)[-1] or p
)
with st.container(border=True):
    chosen = next(a for a in listing.artifacts if a.path == pick)
    render_artifact(artifacts.details(chosen, config.models_dir), live)
