"""Sessions page: recorded sessions in the data directory, with preview and download."""

from pathlib import Path

import pandas as pd
import streamlit as st

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


found = listing(str(config.data_dir))
if st.button("Refresh", key="sessions_refresh"):
    listing.clear()
    found = listing(str(config.data_dir))
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
if info.manifest:
    with st.expander("Manifest"):
        st.json(info.manifest)
