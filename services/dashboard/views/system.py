"""System page: every service's retained status, devices and the broker connection."""

import time

import pandas as pd
import streamlit as st

from imu_har.protocol import topics
from services.dashboard import ui
from services.dashboard.text import code, md

config = ui.settings()
conn = ui.connection(config)
st.title("System")


def services_table(services: dict, now: float) -> pd.DataFrame:
    """One row per service status."""
    rows = []
    for name, status in sorted(services.items()):
        counters = status.counters
        rows.append(
            {
                "service": name,
                "state": status.state,
                "instance": status.instance,
                "version": status.version,
                "up": ui.ago(now - status.started_at) if status.started_at else "—",
                "updated": ui.ago(now - status.updated_at) + " ago",
                "in": counters.messages_in,
                "out": counters.messages_out,
                "rejected": sum(counters.rejected.values()),
                "queue": counters.queue_depth,
                "errors": len(status.errors),
            }
        )
    return pd.DataFrame(rows)


@ui.fragment(run_every=config.refresh)
def system() -> None:
    """Broker link, services, devices and malformed-message counts."""
    link = conn.state()
    now = time.time()
    ui.broker_banner(conn)
    snapshot = conn.store.snapshot()
    st.subheader("Broker")
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    c1.metric("Broker", f"{link.host}:{link.port}")
    c2.metric(
        "Connection",
        "connected" if link.connected else "disconnected",
        help=f"since {ui.ago(now - link.since)}",
    )
    c3.metric("Messages received", f"{snapshot['received']:,}")
    c4.metric("Malformed ignored", sum(snapshot["malformed"].values()))
    if snapshot["ignored"]:
        st.caption(
            "Other traffic not shown: "
            + ", ".join(f"{md(k)} {v}" for k, v in sorted(snapshot["ignored"].items()))
        )
    st.caption(
        f"Disconnects: {link.disconnects} · topic root `{conn.root}` · client `{conn.client_id}`"
        + (f" · last error: {link.last_error}" if link.last_error else "")
    )
    if snapshot["malformed"]:
        st.dataframe(
            pd.DataFrame(sorted(snapshot["malformed"].items()), columns=["reason", "count"]),
            hide_index=True,
        )
    st.subheader("Services")
    services = snapshot["services"]
    if not services:
        st.caption(
            f"No service status on {code(topics.SERVICE_STATUS.subscription(conn.root))} yet."
        )
    else:
        st.dataframe(services_table(services, now), hide_index=True)
    render_services(services)
    render_devices(snapshot["devices"], now)


def render_services(services: dict) -> None:
    """One expander per service with its counters, errors and details."""
    for name, status in sorted(services.items()):
        icon = ":material/check_circle:" if status.state == "online" else ":material/error:"
        with st.expander(f"{md(name)} — {md(status.state)}", icon=icon):
            counters = status.counters
            if counters.rejected:
                st.markdown(
                    "Rejected: " + ", ".join(f"{md(k)} {v}" for k, v in counters.rejected.items())
                )
            if counters.events:
                events = counters.events.items()
                st.markdown("Events: " + ", ".join(f"{md(k)} {v}" for k, v in events))
            for line in status.errors:
                st.code(line, language=None)
            st.json(status.details, expanded=False)


def render_devices(names: list[str], now: float) -> None:
    """A table of the devices seen recently."""
    devices = [conn.store.device(d, now) for d in names]
    st.subheader("Devices")
    if not devices:
        st.caption("No device seen recently.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "device": v.device,
                    "state": v.status.state if v.status else "—",
                    "frames": v.frames,
                    "windows": v.windows,
                    "predictions": len(v.predictions),
                    "fps": round(v.fps, 1),
                    "seen": ui.ago(now - v.last_seen) + " ago",
                }
                for v in devices
                if v is not None
            ]
        ),
        hide_index=True,
    )


system()
