"""The pure dashboard store: messages in, bounded state out (no Streamlit, no broker)."""

from __future__ import annotations

import json
import threading

import numpy as np

from imu_har.protocol.commands import RecorderReply
from services.dashboard import charts, recording
from services.dashboard.store import Limits, Store
from tests.support import publish as pub

T0 = 1_800_000_000.0


def test_frames_predictions_and_truth_build_a_device_view():
    store = Store()
    store.ingest("har/truth-dev/truth", pub.truth("truth-dev", "Squat", T0).to_payload(), T0)
    for seq in range(10):
        store.ingest("har/truth-dev/imu", pub.frame_payload("truth-dev", seq, T0 + seq), T0 + seq)
    store.ingest(
        "har/truth-dev/prediction",
        pub.prediction("truth-dev", 0, "Squat", T0 + 5).to_payload(),
        T0 + 5,
    )
    store.ingest(
        "har/truth-dev/prediction",
        pub.prediction("truth-dev", 1, "Pushup", T0 + 6).to_payload(),
        T0 + 6,
    )
    view = store.device("truth-dev", T0 + 9)
    assert view is not None
    assert view.frames == 10 and sum(len(f.times) for f in view.plot) == 50
    assert view.latest is not None and view.latest.label == "Pushup"
    assert view.truth is not None and view.truth.label == "Squat"
    assert view.accuracy == 0.5 and view.judged == 2
    assert view.fps == 1.0  # 5 frames in the last 5 s
    groups = charts.imu_frames(view.plot, T0 + 9.2, history=3.0)
    assert list(groups) == ["g", "deg/s", "uT"]
    assert groups["g"].index.min() >= -3.0 and list(groups["g"].columns) == [
        "acc_x",
        "acc_y",
        "acc_z",
    ]


def test_accuracy_skips_rest_and_windows_spanning_a_change():
    store = Store()
    store.ingest("har/d1/truth", pub.truth("d1", "rest", T0).to_payload(), T0)
    store.ingest("har/d1/truth", pub.truth("d1", "Lunge", T0 + 10).to_payload(), T0 + 10)
    for at, label in (
        (T0 + 5, "Lunge"),
        (T0 + 10.2, "Lunge"),
        (T0 + 20, "Lunge"),
        (T0 + 21, "Squat"),
    ):
        store.ingest("har/d1/prediction", pub.prediction("d1", 0, label, at).to_payload(), at)
    view = store.device("d1", T0 + 21)
    assert view is not None
    # rest window and the window spanning the change at T0+10 are skipped
    assert view.skipped == 2 and view.judged == 2 and view.accuracy == 0.5
    table = charts.timeline_table(view.predictions, view.truths, T0 + 21)
    assert set(table["row"]) == {"predicted", "truth"} and len(table) == 6


def test_malformed_messages_are_counted_never_raised():
    store = Store()
    bad = [
        ("har/d1/imu", b"\x01F\x00"),  # truncated frame
        ("har/d1/imu", pub.frame_payload("d2", 0, T0)),  # device differs from the topic
        ("har/d1/prediction", b"{not json"),
        ("har/d1/prediction", b'{"device": "d1"}'),  # fields missing
        ("har/bad+id/imu", pub.frame_payload("d1", 0, T0)),  # wildcard in the device level
        ("har/service/x/status", b"[]"),
        ("har/model/spec", b'{"name": 3}'),
        ("har/recorder/status", b"[1, 2]"),
        ("har/recorder/reply", b"nope"),
        ("har/d1/window", b"xx"),
    ]
    store.ingest("har/d1/unknown-kind", b"whatever", T0)  # not malformed: just not shown
    store.ingest("har/recorder/cmd", b'{"action": "list"}', T0)
    for topic, payload in bad:
        store.ingest(topic, payload, T0)
    snap = store.snapshot()
    assert sum(snap["malformed"].values()) == len(bad)
    assert snap["ignored"] == {"unknown-kind": 1, "command": 1}
    assert snap["malformed"]["bad_json"] == 6
    assert snap["malformed"]["device_mismatch"] == 1 and snap["malformed"]["bad_device"] == 1
    assert snap["model_spec"] is None and snap["services"] == {}
    assert store.devices() == []  # nothing bad created a device


def test_memory_stays_bounded_with_100k_messages_from_many_devices():
    limits = Limits(max_devices=16, idle_timeout=30.0, plot_samples=500, predictions=50, truths=20)
    store = Store(limits=limits)
    frame_payloads = {f"dev-{i}": pub.frame_payload(f"dev-{i}", 0, T0) for i in range(200)}
    for n in range(100_000):
        device = f"dev-{n % 200}"
        now = T0 + n * 0.001
        if n % 10 == 0:
            store.ingest(
                f"har/{device}/prediction",
                pub.prediction(device, n, "Squat", now).to_payload(),
                now,
            )
        elif n % 97 == 0:
            store.ingest(f"har/{device}/truth", pub.truth(device, "Squat", now).to_payload(), now)
        elif n % 53 == 0:
            store.ingest(
                f"har/service/svc-{n % 500}/status", pub.service_status("s").to_payload(), now
            )
        else:
            store.ingest(f"har/{device}/imu", frame_payloads[device], now)
        if n % 5000 == 0:
            sizes = store.sizes()
            assert sizes["devices"] <= 16
    sizes = store.sizes()
    assert sizes["devices"] == 16
    assert sizes["plot_samples"] < 500 + 5
    assert sizes["predictions"] <= 50 and sizes["truths"] <= 20
    assert sizes["arrivals"] <= limits.rate_events and sizes["services"] <= 64
    assert store.snapshot()["malformed"]["too_many_services"] > 0
    assert store.evicted >= 200 - 16


def test_idle_devices_are_evicted():
    store = Store(limits=Limits(idle_timeout=60.0))
    store.ingest("har/old/imu", pub.frame_payload("old", 0, T0), T0)
    store.ingest("har/new/imu", pub.frame_payload("new", 0, T0), T0 + 50)
    store.evict_idle(T0 + 70)
    assert store.devices() == ["new"]
    store.evict_idle(T0 + 200)
    assert store.devices() == [] and store.evicted == 2


def test_concurrent_ingest_and_reads_are_consistent():
    store = Store()

    def feed(device: str) -> None:
        for seq in range(2000):
            store.ingest(f"har/{device}/imu", pub.frame_payload(device, seq, T0 + seq), T0 + seq)

    threads = [threading.Thread(target=feed, args=(f"c{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for device in store.devices():
            view = store.device(device, T0)
            assert view is not None and len(view.plot) >= 1
    assert store.snapshot()["received"] == 8000
    assert all((v := store.device(f"c{i}")) is not None and v.frames == 2000 for i in range(4))


def test_replies_match_their_correlation_and_recorder_status_is_read():
    store = Store()
    reply = RecorderReply(ok=True, action="start", data={"session": "s-1"}).to_payload()
    store.ingest("har/dashboard/client-1/reply", reply, T0, correlation=b"abc")
    found = store.reply_for("abc")
    assert found is not None and found.reply.data["session"] == "s-1"
    assert store.reply_for("other") is None
    session = {
        "session": "s-1",
        "device": "d1",
        "label": "Squat",
        "started_at": T0,
        "seconds": 3.0,
        "rows": 321,
        "frames": 33,
    }
    status = {"state": "online", "recording": [session]}
    store.ingest("har/recorder/status", json.dumps(status).encode(), T0)
    assert recording.session_rows(store.snapshot()["recorder_status"], "s-1") == 321
    assert recording.session_rows(store.snapshot()["recorder_status"], "s-2") is None
    assert recording.open_sessions(store.snapshot()["recorder_status"])[0]["rows"] == 321
    store.ingest("har/recorder/status", json.dumps({"recording": "garbage"}).encode(), T0)
    assert recording.session_rows(store.snapshot()["recorder_status"], "s-1") == 321
    assert store.snapshot()["malformed"].get("bad_json") == 1


def test_retained_clears_remove_state():
    store = Store()
    store.ingest("har/service/windower/status", pub.service_status("windower").to_payload(), T0)
    store.ingest("har/model/spec", pub.model_spec().to_payload(), T0)
    assert "windower" in store.snapshot()["services"] and store.snapshot()["model_spec"]
    store.ingest("har/service/windower/status", b"", T0)
    store.ingest("har/model/spec", b"", T0)
    assert store.snapshot()["services"] == {} and store.snapshot()["model_spec"] is None


def test_confusion_table_rejects_malformed_matrices():
    labels = ["a", "b"]
    assert charts.confusion_table([[1, 2], [3, 4]], labels).loc["b", "a"] == 3
    data, spec = charts.confusion_chart(charts.confusion_table([[1, 2], [3, 4]], labels))
    assert len(data) == 4 and data["count"].sum() == 10 and len(spec["layer"]) == 2
    for bad in ([[1, 2]], [[1, 2], [3]], [["x", 2], [3, 4]], {"a": 1}):
        try:
            charts.confusion_table(bad, labels)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")
    assert np.array_equal(charts.confusion_table([[0, 1], [1, 0]], labels).values, [[0, 1], [1, 0]])
