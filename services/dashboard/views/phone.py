"""Phone page: how to make a phone a wearable (QR code of the phone page, Sensor Logger settings).

What the gateway says in its retained status (``details.phone``, from ``har
gateway --source phone``) is shown only after checking it: the URLs must be
``https://host:port/`` (page) and ``http(s)://host:port/path`` (push) with a
plain host name or address, so a forged status cannot put another site into the
QR code. The token is not in any MQTT message: it is read from
``<--phone-dir>/token`` (default ``<--data-dir>/phone/token``), where the
gateway writes it (its ``--phone-dir`` defaults to ``data/phone``); without that
file the page says where to find it.
"""

import io
import re
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pandas as pd
import segno
import streamlit as st

from services.dashboard import ui
from services.dashboard.text import code, md

config = ui.settings()
conn = ui.connection(config)
st.title("Phone")
HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
PATH = re.compile(r"(/[A-Za-z0-9_\-]+)*/?")
TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,128}")


def checked_url(value: object, schemes: tuple[str, ...]) -> str | None:
    """``value`` if it is a plain ``scheme://host:port/path`` URL, else None."""
    if not isinstance(value, str) or len(value) > 300:
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    host = parts.netloc.rsplit(":", 1)[0]
    fine = parts.scheme in schemes and port and HOST.fullmatch(host) and PATH.fullmatch(parts.path)
    return value if fine and not (parts.query or parts.fragment or "@" in parts.netloc) else None


def read_token(path: Path) -> str | None:
    """The gateway's token, if it wrote one where this dashboard can read it."""
    try:
        token = path.read_text().strip()
    except OSError:
        return None
    return token if TOKEN.fullmatch(token) else None


def with_token(url: str, token: str | None, device: str | None = None) -> str:
    """``url`` with the token (and a device name) as query parameters."""
    query = [f"{k}={quote(v)}" for k, v in (("token", token), ("device", device)) if v]
    return url + ("?" + "&".join(query) if query else "")


def qr_png(text: str) -> bytes:
    """A QR code of ``text`` as PNG bytes."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=8, border=2)
    return out.getvalue()


def phone_rows(names: list[str], now: float) -> list[dict[str, object]]:
    """One row per device whose status says it is a phone."""
    rows = []
    for name in names:
        view = conn.store.device(name, now)
        status = view.status if view is not None else None
        if status is None or status.source != "phone":
            continue
        rows.append(
            {
                "device": status.device,
                "state": status.state,
                "via": status.address or "—",
                "samples/s": round(status.sample_rate, 1),
                "acceleration": status.acceleration or "—",
                "channels": ", ".join(status.channels or ["the default nine"]),
                "repeats": status.duplicates,
                "reordered": status.reordered,
                "lost": status.lost_packets,
                "problem": status.error or "",
            }
        )
    return rows


def how_to(phone: dict, token: str | None) -> None:
    """The two ways in: the phone page (QR code) and the Sensor Logger app."""
    page = checked_url(phone.get("page"), ("https",))
    push = checked_url(phone.get("push"), ("http",)) or checked_url(
        phone.get("push_https"), ("https",)
    )
    needs_token = bool(phone.get("token_required"))
    if needs_token and token is None:
        st.warning(
            "The gateway wants a token, and this dashboard cannot read it from "
            f"{code(config.phone_token_file)}. It is in the gateway's --phone-dir "
            "(and in its log at start-up)."
        )
    token = token if needs_token else None
    left, right = st.columns([1, 2])
    if page is None:
        right.info("The gateway serves no phone page (its HTTPS port is off).")
    else:
        link = with_token(page, token)
        left.image(qr_png(link), caption="Scan with the phone's camera", width=260)
        right.subheader("1. The phone page (no app)")
        right.markdown(f"Open {code(link)} on the phone, accept the certificate, tap **Start**.")
        fingerprint = phone.get("certificate_sha256")
        if isinstance(fingerprint, str) and re.fullmatch(r"[0-9a-f]{64}", fingerprint):
            right.caption(f"Certificate SHA-256: {code(fingerprint)}")
    right.subheader("2. The Sensor Logger app")
    if push is not None:
        right.markdown(f"HTTP Push URL: {code(with_token(push, token))}")
    topic = phone.get("sensor_logger_topic")
    if isinstance(topic, str) and re.fullmatch(r"[A-Za-z0-9_\-/]{1,100}", topic):
        broker = conn.state()
        right.markdown(
            f"or MQTT: broker {code(broker.host)} port {code(broker.port)}, topic {code(topic)}"
        )


@ui.fragment(run_every=config.refresh)
def phones() -> None:
    """Where phones connect, and the phones streaming now."""
    ui.broker_banner(conn)
    snapshot, now = conn.store.snapshot(), time.time()
    gateway = snapshot["services"].get("gateway")
    phone = gateway.details.get("phone") if gateway is not None else None
    if gateway is None or gateway.state != "online" or not isinstance(phone, dict):
        st.info(
            "No gateway serves phones. Start one with `har up --phone` "
            "(or `har gateway --source phone`); docs/gateway.md says more."
        )
    else:
        how_to(phone, read_token(config.phone_token_file))
        st.caption(
            f"{md(phone.get('phones', 0))} of at most {md(phone.get('max_phones', '?'))} phones"
        )
    st.subheader("Phones")
    rows = phone_rows(snapshot["devices"], now)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.caption("No phone seen yet.")
    st.caption(
        "The demo model was trained on a simulated chest-worn sensor: it does not know a phone "
        "on an arm or in a pocket. Record a minute of each exercise (Record page), train "
        "(`har train`), and load your model (docs/gateway.md, 'The first five minutes')."
    )


phones()
