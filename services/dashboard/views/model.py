"""Model page: the active model's spec, metrics and confusion matrix."""

import streamlit as st

from imu_har.protocol import topics
from services.dashboard import charts, ui
from services.dashboard.text import code, md

MAX_CONFUSION_LABELS = 64  # a bigger matrix is shown as a table only (a 256 KiB spec holds ~250)

config = ui.settings()
conn = ui.connection(config)
st.title("Model")


def scalar_metrics(metrics: dict[str, object]) -> dict[str, float]:
    """The plain numeric metrics (accuracy, f1, ...)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


@ui.fragment(run_every=max(config.refresh, 2.0))
def model() -> None:
    """The retained model spec and the classifier's status details."""
    ui.broker_banner(conn)
    snapshot = conn.store.snapshot()
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
        numbers = scalar_metrics(spec.metrics)
        if numbers:
            st.subheader("Metrics")
            for column, (name, value) in zip(
                st.columns(min(len(numbers), 6)), list(numbers.items())[:6], strict=False
            ):
                column.metric(md(name), f"{value:.3f}")
        render_confusion(spec.metrics, list(spec.labels))
        with st.expander("Full spec"):
            st.json(spec.model_dump(mode="json"))
    classifier = snapshot["services"].get("classifier")
    st.subheader("Classifier service")
    if classifier is None:
        st.caption("No classifier status received.")
    else:
        st.markdown(f"State: **{md(classifier.state)}** · instance {code(classifier.instance)}")
        st.json(classifier.details, expanded=True)


def render_confusion(metrics: dict[str, object], default_labels: list[str]) -> None:
    """The confusion matrix from the metrics, when present and well formed."""
    matrix = metrics.get("confusion_matrix")
    if matrix is None:
        return
    labels = metrics.get("labels", default_labels)
    try:
        table = charts.confusion_table(matrix, labels)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        st.warning(f"The model's confusion matrix is unreadable: {md(exc)}")
        return
    st.subheader("Confusion matrix")
    if len(table) > MAX_CONFUSION_LABELS:
        st.dataframe(table)
        return
    left, right = st.columns([3, 2])
    ui.chart(left, *charts.confusion_chart(table))
    right.dataframe(table)


model()
