"""Sessions page edits under AppTest, sent to the real recorder (subprocess) on a real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.dashboard import app, connection_of, texts, wait_until
from tests.support.recorder import read_recordings
from tests.support.recorder_mqtt import Requester, announce, record_session

pytestmark = pytest.mark.broker
DEV = "wrist-7"


def manifest(data: Path, session: str) -> dict:
    return dict(json.loads((data / "sessions" / f"{session}.json").read_text()))


def recorder_online(conn) -> bool:  # type: ignore[no-untyped-def]
    status = conn.store.snapshot()["services"].get("recorder")
    return status is not None and status.state == "online"


def sessions_shown(at) -> dict:  # type: ignore[no-untyped-def]
    return dict(at.dataframe[1].value.set_index("session").to_dict("index"))


def test_relabel_reps_exclude_and_delete_from_the_page(
    dashboard_settings, recorder, mqtt_client
) -> None:
    data = dashboard_settings.data_dir
    at = app("sessions")
    conn = connection_of(dashboard_settings)
    wait_until(lambda: recorder_online(conn), timeout=30)
    requester = Requester(mqtt_client)
    announce(mqtt_client, DEV)
    wait_until(lambda: requester.send({"action": "status"})["ok"], timeout=30)
    first = record_session(requester, mqtt_client, DEV, "Squat", 0, subject="ann", reps=8)
    second = record_session(requester, mqtt_client, DEV, "Squat", 10, subject="bo")
    at.button(key="sessions_refresh").click().run()
    assert not at.exception
    shown = sessions_shown(at)
    assert shown[first]["reps"] == 8 and shown[second]["excluded"] is False

    at.selectbox(key="sessions_pick").set_value(first).run()
    at.text_input(key=f"edit_label_{first}").set_value("Lunge")
    at.button(key="edit_relabel").click().run(timeout=30)
    assert not at.exception
    assert "Recorder: relabel of" in texts(at), texts(at)
    assert manifest(data, first)["label"] == "Lunge"
    rows = read_recordings(data).select(["session", "label"]).to_pandas()
    assert set(rows.loc[rows["session"] == first, "label"]) == {"Lunge"}
    assert sessions_shown(at)[first]["label"] == "Lunge"

    at.number_input(key=f"edit_reps_{first}").set_value(11)
    at.button(key="edit_save_reps").click().run(timeout=30)
    assert manifest(data, first)["reps"] == 11
    at.button(key="edit_exclude").click().run(timeout=30)
    assert manifest(data, first)["excluded"] is True
    assert sessions_shown(at)[first]["excluded"] is True
    assert "left out of training" in texts(at)

    at.selectbox(key="sessions_pick").set_value(second).run()
    assert at.button(key="edit_delete").disabled  # not before the confirmation
    at.checkbox(key=f"edit_confirm_{second}").check().run()
    at.button(key="edit_delete").click().run(timeout=30)
    assert not at.exception
    assert "Recorder: delete of" in texts(at)
    assert not (data / "sessions" / f"{second}.json").exists()
    assert set(read_recordings(data)["session"].to_pylist()) == {first}
    assert set(sessions_shown(at)) == {first}


def test_bad_names_are_refused_before_sending_and_a_missing_recorder_is_said(
    dashboard_settings, mqtt_client
) -> None:
    base = dashboard_settings.data_dir
    session = "20261124T100000Z-wrist-1-abcdef"
    folder = base / "recordings" / "date=2026-11-24" / "device=wrist-1"
    folder.mkdir(parents=True)
    table = pa.table({"time": [0.0, 0.02], "acc_x": [0.0, 1.0], "label": ["Squat"] * 2})
    pq.write_table(table, folder / f"{session}.parquet")
    at = app("sessions")
    connection_of(dashboard_settings)
    at.text_input(key=f"edit_label_{session}").set_value("../../etc")
    at.button(key="edit_relabel").click().run()
    assert not at.exception
    assert "Cannot send: label" in texts(at)
    at.number_input(key=f"edit_reps_{session}").set_value(3)
    at.button(key="edit_save_reps").click().run(timeout=30)
    assert not at.exception
    assert "No reply to `set_reps` from the recorder" in texts(at)
