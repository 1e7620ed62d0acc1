"""Topic templates, device-id validation, JSON messages, commands and settings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from imu_har.protocol import topics
from imu_har.protocol.commands import parse_recorder_command
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.messages import Prediction, ServiceStatus
from imu_har.protocol.model_spec import ModelSpec, load_spec
from imu_har.runtime.settings import MqttSettings, load_settings


def test_topic_templates_format_subscribe_and_parse() -> None:
    assert topics.IMU.format("har", device="wrist-1") == "har/wrist-1/imu"
    assert topics.IMU.subscription("har") == "har/+/imu"
    assert topics.SERVICE_STATUS.subscription("lab/har") == "lab/har/service/+/status"
    assert topics.PREDICTION.parse("har/wrist-1/prediction", "har") == {"device": "wrist-1"}
    assert topics.PREDICTION.parse("har/wrist-1/window", "har") is None
    assert topics.IMU.parse("other/wrist-1/imu", "har") is None
    assert topics.SERVICE_STATUS.parse("har/service/windower/status") == {"service": "windower"}


@pytest.mark.parametrize(
    "bad",
    [
        "a/b",
        "a+b",
        "#",
        "..",
        "x..y",
        "",
        " ",
        "a b",
        "x" * 65,
        "tab\t",
        "recorder",
        "Service",
        "../../etc/passwd",
        "ü",
    ],
)
def test_device_ids_are_validated(bad: str) -> None:
    with pytest.raises(PayloadError):
        topics.validate_device_id(bad)
    with pytest.raises(PayloadError):
        topics.IMU.format("har", device=bad)


def test_reserved_names_do_not_parse_as_devices() -> None:
    with pytest.raises(PayloadError):
        topics.DEVICE_STATUS.parse("har/recorder/status")


def test_prediction_rejects_unknown_fields_and_bad_values() -> None:
    good = {
        "device": "d1",
        "window_seq": 1,
        "window_start": 1.0,
        "window_end": 2.0,
        "label": "Squat",
        "confidence": 0.9,
        "probabilities": {"Squat": 0.9, "Lunge": 0.1},
        "smoothed_label": "Squat",
        "model": "m",
        "model_version": "abc",
        "latency_ms": 0.5,
    }
    message = Prediction(**good)
    assert Prediction.from_payload(message.to_payload()) == message
    for patch in ({"extra": 1}, {"device": "d/1"}, {"confidence": 2.0}, {"window_seq": -1}):
        with pytest.raises(PayloadError):
            Prediction.from_payload(json.dumps({**good, **patch}))
    with pytest.raises(PayloadError, match="bad_json"):
        Prediction.from_payload(b"{not json")
    for name, bad in (("probabilities", '{"Squat": NaN}'), ("window_start", "Infinity")):
        text = json.dumps(good).replace(json.dumps(good[name]), bad, 1)
        assert bad in text
        with pytest.raises(PayloadError, match=f"{name}.*finite"):
            Prediction.from_payload(text)
    with pytest.raises(PayloadError, match="too_large"):
        Prediction.from_payload(b"x" * 300_000)


def test_service_status_round_trip() -> None:
    status = ServiceStatus(service="windower", instance="w-1", state="offline")
    assert ServiceStatus.from_payload(status.to_payload()).state == "offline"


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "start", "device": "d1", "label": "../etc"},
        {"action": "start", "device": "d1", "label": "a/b"},
        {"action": "start", "device": "+", "label": "Squat"},
        {"action": "start", "device": "d1", "label": "Squat", "subject": "/abs"},
        {"action": "stop"},
        {"action": "stop", "device": "d1", "session": "s"},
        {"action": "explode"},
        {"action": "start", "device": "d1", "label": "Squat", "rogue": True},
    ],
)
def test_recorder_commands_refuse_hostile_input(payload: dict[str, object]) -> None:
    with pytest.raises(PayloadError, match="bad_command"):
        parse_recorder_command(json.dumps(payload).encode())


def test_recorder_command_size_limit() -> None:
    big = json.dumps({"action": "start", "device": "d", "label": "x", "notes": "n" * 20_000})
    with pytest.raises(PayloadError, match="too_large"):
        parse_recorder_command(big.encode())


def test_model_spec_validation_and_loading(tmp_path: Path) -> None:
    spec = {
        "name": "m",
        "version": "v1",
        "labels": ["a", "b"],
        "channels": ["x", "y"],
        "window": 20,
        "hop": 5,
        "rate": 50.0,
        "normalization": {"mean": [0, 0], "std": [1, 1]},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert load_spec(tmp_path).labels == ["a", "b"]
    with pytest.raises(PayloadError, match="bad_artifact"):
        load_spec(tmp_path / "missing")
    (tmp_path / "spec.json").write_text(json.dumps({**spec, "labels": ["a", "a"]}))
    with pytest.raises(PayloadError, match="labels repeat"):
        load_spec(tmp_path)
    (tmp_path / "spec.json").write_text("{broken")
    with pytest.raises(PayloadError, match="bad_artifact"):
        load_spec(tmp_path)
    with pytest.raises(ValueError):
        ModelSpec(**{**spec, "normalization": {"mean": [0], "std": [1]}})  # type: ignore[arg-type]


def test_settings_precedence_flags_env_file(tmp_path: Path) -> None:
    config = tmp_path / "har.toml"
    config.write_text('mqtt_host = "filehost"\nmqtt_port = 1111\ntopic_root = "fromfile"\n')
    env = {"HAR_MQTT_PORT": "2222", "HAR_TOPIC_ROOT": "fromenv"}
    settings = load_settings(
        MqttSettings, ["--config", str(config), "--topic-root", "flag"], env=env
    )
    assert (settings.mqtt_host, settings.mqtt_port, settings.topic_root) == (
        "filehost",
        2222,
        "flag",
    )


def test_bad_settings_exit_with_readable_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load_settings(MqttSettings, ["--mqtt-port", "99999"], env={"HAR_TOPIC_ROOT": "har/#"})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--mqtt-port / HAR_MQTT_PORT" in err and "--topic-root / HAR_TOPIC_ROOT" in err


def test_inbox_sheds_when_full_and_batches() -> None:
    from imu_har.runtime.inbox import Inbound, Inbox

    inbox = Inbox(max_batch=3, limit=4)
    accepted = [inbox.put(Inbound(f"t/{i}", b"")) for i in range(6)]
    assert accepted == [True] * 4 + [False] * 2
    assert [m.topic for m in inbox.next_batch(0.1)] == ["t/0", "t/1", "t/2"]
    assert [m.topic for m in inbox.next_batch(0.1)] == ["t/3"]
    assert inbox.next_batch(0.01) == []
    unbounded = Inbox(limit=None)
    assert all(unbounded.put(Inbound("t", b"")) for _ in range(1000))


def _read_one_batch(inbox, into: list) -> None:  # type: ignore[no-untyped-def, type-arg]
    into.extend(inbox.next_batch(600.0))


@pytest.mark.parametrize("many", [False, True])
def test_inbox_wakes_a_waiting_reader_at_once(many: bool) -> None:
    """A message put while the reader waits ends the wait (not the timeout)."""
    import threading

    from imu_har.runtime.inbox import Inbound, Inbox

    for round_ in range(20):
        inbox, got = Inbox(max_batch=8), []
        reader = threading.Thread(target=_read_one_batch, args=(inbox, got), daemon=True)
        reader.start()
        while not inbox._waiting:  # the reader is about to wait or waiting
            time.sleep(0.001)
        message = Inbound(f"t/{round_}", b"")
        inbox.put_many([message]) if many else inbox.put(message)
        reader.join(30)
        assert not reader.is_alive(), "the reader missed the wake-up"
        assert got == [message]
