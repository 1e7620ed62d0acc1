"""Hostile input the dashboard shows: Markdown in MQTT messages and session files, odd topics.

Streamlit renders Markdown in subheaders, captions, alerts, metric labels and
values, expander labels and help tooltips: an image there is fetched by every
viewer's browser, a link is a phishing button. Everything untrusted is escaped.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from imu_har.protocol import topics
from imu_har.protocol.commands import RecorderReply
from imu_har.protocol.messages import Counters, DeviceStatus
from services.dashboard import charts, sessions
from services.dashboard.store import Store
from services.dashboard.text import code, md
from tests.support import publish as pub
from tests.support.dashboard import app, connection_of, wait_until

IMAGE = "![p](http://127.0.0.1:9/pixel.png)"
LINK = "[log in again](http://127.0.0.1:9/phish)"
# An image or a link that Markdown would render: '![' or '](' not preceded by a backslash
# (code spans, where nothing renders, are taken out first).
RENDERED = re.compile(r"(?<!\\)!\[|(?<!\\)\]\(")
CODE_SPAN = re.compile(r"`[^`]*`")
T0 = 1_800_000_000.0
# Labels are names (issue 12: the protocol refuses IMAGE or LINK as a label), but a name
# may still hold Markdown's emphasis characters.
ODD_LABEL = "x__y__"


def markdown_shown(at: AppTest) -> list[str]:
    """Every string of the page that Streamlit renders as Markdown."""
    shown = [e.value for e in (*at.markdown, *at.caption, *at.subheader, *at.title)]
    shown += [e.value for e in (*at.info, *at.error, *at.warning, *at.success)]
    shown += [e.label for e in at.expander]
    for metric in at.metric:
        shown += [metric.label, metric.value, metric.proto.help]
    return [str(s) for s in shown]


def renders_markup(text: str) -> bool:
    """True if ``text`` would render an image or a link."""
    return bool(RENDERED.search(CODE_SPAN.sub("", text)))


def test_escaping_keeps_text_and_disarms_markdown():
    assert renders_markup(IMAGE) and renders_markup(LINK) and renders_markup("`x`" + IMAGE)
    assert not renders_markup(md(IMAGE)) and not renders_markup(md(LINK))
    assert md("wrist-1") == "wrist-1" and md("a\nb\x1b[31m") == "a b [31m".replace("[", "\\[")
    assert md(":red[x] $x$ <b>") == "\\:red\\[x\\] \\$x\\$ \\<b\\>"
    assert code("x` " + IMAGE) == "`x' " + IMAGE + "`"  # nothing inside a code span renders
    assert len(md("x" * 1000)) == 200


def test_service_names_must_be_plain_and_only_our_replies_are_kept():
    store = Store(client_id="dash-1")
    status = pub.service_status("x").to_payload()
    store.ingest("har/service/![p](pixel.png)/status", status, T0)  # one level, an image
    store.ingest("har/service/" + "s" * 65 + "/status", status, T0)
    assert store.snapshot()["services"] == {}
    assert store.snapshot()["malformed"] == {"bad_topic": 2}
    reply = RecorderReply(ok=True, action="start", data={"session": "s-1"}).to_payload()
    for n in range(60):  # another dashboard's replies cannot push ours out of the list
        store.ingest(topics.DASHBOARD_REPLY.format(client="dash-2"), reply, T0, b"%d" % n)
    store.ingest(topics.DASHBOARD_REPLY.format(client="dash-1"), reply, T0, correlation=b"mine")
    assert store.reply_for("mine") is not None and store.reply_for("1") is None
    assert store.snapshot()["ignored"]["other_dashboard_reply"] == 60


def test_a_prediction_with_thousands_of_classes_draws_twenty_bars():
    many = {f"class-{n}": 0.0001 for n in range(3000)} | {"Squat": 0.6, "Lunge": 0.1}
    prediction = pub.prediction("d1", 0, "Squat").model_copy(update={"probabilities": many})
    data, spec = charts.probabilities_chart(prediction)
    assert len(data) == charts.MAX_BARS and spec["height"] < 70 + 26 * 21
    assert {"Squat", "Lunge"} <= set(data["label"]) and data["predicted"].sum() == 1


@pytest.mark.broker
def test_markdown_in_messages_is_shown_as_text(dashboard_settings, mqtt_client):
    at = app("live")
    conn = connection_of(dashboard_settings)
    device = "evil-1"
    matrix = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    spec = pub.model_spec().model_copy(
        update={
            "name": IMAGE,
            "architecture": LINK,
            "labels": ["Squat", "Pushup_Incorrect", ODD_LABEL],
            "metrics": {IMAGE: 0.5, "confusion_matrix": matrix},
        }
    )
    pub.publish(mqtt_client, "har/model/spec", spec.to_payload(), retain=True)
    status = DeviceStatus(device=device, state="streaming", source=IMAGE)
    pub.publish(mqtt_client, topics.DEVICE_STATUS.format(device=device), status.to_payload())
    pub.publish(mqtt_client, topics.GROUND_TRUTH.format(device=device), truth(device))
    for seq in range(3):
        prediction = pub.prediction(device, seq, "Squat").model_copy(
            update={
                "label": ODD_LABEL,
                "smoothed_label": ODD_LABEL,
                "probabilities": {ODD_LABEL: 1.0},
            }
        )
        pub.publish(mqtt_client, topics.PREDICTION.format(device=device), prediction.to_payload())
    service = pub.service_status("classifier").model_copy(
        update={
            "instance": "x`" + IMAGE,
            "counters": Counters(rejected={IMAGE: 1}, events={LINK: 2}),
            "errors": [IMAGE],
        }
    )
    service_topic = topics.SERVICE_STATUS.format(service="classifier")
    pub.publish(mqtt_client, service_topic, service.to_payload(), retain=True)
    pub.publish(mqtt_client, "har/x/![p](http:", b"1")  # an ignored topic's last level
    try:
        wait_until(lambda: (v := conn.store.device(device)) is not None and len(v.predictions) == 3)
        wait_until(lambda: conn.store.snapshot()["model_spec"] is not None)
        wait_until(lambda: "classifier" in conn.store.snapshot()["services"])
        wait_until(lambda: any("!" in k for k in conn.store.snapshot()["ignored"]))
        for page in ("live", "models", "system"):
            at.switch_page(f"views/{page}.py").run()
            assert not at.exception, page
            shown = markdown_shown(at)
            assert any("pixel" in s for s in shown), page  # the hostile text is there...
            assert not [s for s in shown if renders_markup(s)], page  # ...as text only
    finally:
        pub.publish(mqtt_client, "har/model/spec", b"", retain=True)
        pub.publish(mqtt_client, service_topic, b"", retain=True)


def truth(device: str) -> bytes:
    return pub.truth(device, ODD_LABEL, T0).to_payload()


def write_part(path, rows: int = 10) -> None:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"time": [T0 + i / 50 for i in range(rows)], "acc_x": [0.5] * rows})
    pq.write_table(table, path)


@pytest.mark.broker
def test_hostile_session_files(dashboard_settings, tmp_path):
    base = dashboard_settings.data_dir
    folder = base / "recordings" / "date=2026-12-04" / "device=wrist-1"
    write_part(folder / "good-1.parquet")
    (folder / "good-1.json").write_text(json.dumps({"label": IMAGE, "subject": LINK}))
    outside = tmp_path / "elsewhere.parquet"
    write_part(outside)
    (folder / "linked-1.parquet").symlink_to(outside)  # a download must not serve it
    write_part(folder / "huge-1.parquet")
    (folder / "huge-1.json").write_text(" " * (sessions.MAX_MANIFEST_BYTES + 1) + "{}")
    found = {s.session: s for s in sessions.find_sessions(base)}
    assert set(found) == {"good-1", "huge-1"}
    assert found["huge-1"].error and "manifest" in found["huge-1"].error
    at = app("sessions")
    assert not at.exception
    at.selectbox(key="sessions_pick").set_value("good-1").run()
    assert not at.exception
    shown = markdown_shown(at)
    assert any("pixel" in s for s in shown)
    assert not [s for s in shown if renders_markup(s)]


def test_preview_of_an_empty_part_and_of_many_row_groups(tmp_path):
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"time": pa.array([], pa.float64()), "acc_x": []}), empty)
    assert sessions.load_preview(empty).empty
    big = tmp_path / "big.parquet"
    rows = 10_000
    pq.write_table(
        pa.table({"time": [T0 + i / 50 for i in range(rows)], "acc_x": [1.0] * rows}),
        big,
        row_group_size=700,
    )
    preview = sessions.load_preview(big, max_rows=3000)
    assert len(preview) == 3000 and list(preview.columns) == ["acc_x"]
    assert preview.index[0] == 0 and preview.index[-1] == pytest.approx(2999 / 50)
