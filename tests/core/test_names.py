"""Every name check is a full match: ids, labels, subjects, channel names, topics.

Issue 12: the patterns used ``re.match(...$)``, and ``$`` also matches before a
final newline, so ``"sim-001\\n"`` passed as a device id and ``"Squat\\n"`` as a
label. The property tests compare each validator with a plain, character-by-
character statement of its rule over text full of control characters,
separators and Unicode.
"""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from imu_har.protocol import topics
from imu_har.protocol.codec import DEFAULT_CHANNELS, Frame, decode_frame, encode_frame
from imu_har.protocol.commands import StartRecording, parse_recorder_command, validate_name
from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import publish_topic_problem, validate_device_id

ASCII_ALNUM = set(string.ascii_letters + string.digits)
# Text that hits the edges: rule characters, separators, wildcards, controls, Unicode.
TRICKY = st.text(
    alphabet=st.sampled_from(
        list("aZ09_-.: ") + list("/+#$\n\r\t\x00\x7f\x85\u2028é١Ａ𝟘") + ["\u200b", "\ufeff"]
    ),
    max_size=70,
)
NAMES = st.one_of(TRICKY, st.text(max_size=70), TRICKY.map(lambda s: "ok" + s))


def device_rule(text: str) -> bool:
    allowed = ASCII_ALNUM | set("_.:-")
    return (
        0 < len(text) <= 64
        and text[0] in ASCII_ALNUM
        and all(ch in allowed for ch in text)
        and ".." not in text
        and text.lower() not in topics.RESERVED_NAMES
    )


def name_rule(text: str) -> bool:
    return (
        0 < len(text) <= 64
        and text[0] in ASCII_ALNUM
        and all(ch in ASCII_ALNUM | set(" _-") for ch in text)
    )


def channel_rule(text: str) -> bool:
    return 0 < len(text) <= 32 and all(ch in ASCII_ALNUM | set("_./%-") for ch in text)


def accepts(check, text: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        check(text)
    except (PayloadError, ValueError):
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(NAMES)
def test_device_ids_follow_the_rule_exactly(text: str) -> None:
    assert accepts(validate_device_id, text) == device_rule(text)


@settings(max_examples=400, deadline=None)
@given(NAMES)
def test_labels_and_subjects_follow_the_rule_exactly(text: str) -> None:
    assert accepts(validate_name, text) == name_rule(text)


def _encode_with_channel(name: str) -> None:
    channels = (name, *DEFAULT_CHANNELS[1:])
    frame = Frame("d1", 0, 1.0, 50.0, [[0.0] * 9], channels=channels)  # type: ignore[arg-type]
    decode_frame(encode_frame(frame))


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_channel_names_follow_the_rule_exactly(text: str) -> None:
    rule = channel_rule(text) and text not in DEFAULT_CHANNELS[1:]
    assert accepts(_encode_with_channel, text) == rule


@pytest.mark.parametrize("bad", ["sim-001\n", "sim-001\r\n", "sim\n001", "\nsim", "sim-001\x00"])
def test_a_trailing_or_embedded_newline_is_not_a_device_id(bad: str) -> None:
    with pytest.raises(PayloadError) as err:
        validate_device_id(bad)
    assert err.value.reason == "bad_device"
    with pytest.raises(PayloadError):
        topics.IMU.parse(f"har/{bad}/imu")


def test_a_topic_with_a_newline_in_the_device_level_is_refused() -> None:
    with pytest.raises(PayloadError):
        topics.IMU.parse("har/sim-001\n/imu")
    assert topics.IMU.parse("har/sim-001/imu\n") is None  # not the template's shape


@pytest.mark.parametrize(
    ("field", "value"),
    [("device", "sim-001\n"), ("label", "Squat\n"), ("subject", "ann\n"), ("label", "Squat\r")],
)
def test_recorder_start_refuses_names_ending_in_a_newline(field: str, value: str) -> None:
    command = {"action": "start", "device": "sim-001", "label": "Squat", field: value}
    with pytest.raises(PayloadError) as err:
        parse_recorder_command(json.dumps(command).encode())
    assert err.value.reason == "bad_command"
    with pytest.raises(ValidationError):
        StartRecording.model_validate(command)


def test_template_values_must_be_one_level() -> None:
    with pytest.raises(PayloadError):
        topics.SERVICE_STATUS.format(service="a/b")
    with pytest.raises(PayloadError):
        topics.DASHBOARD_REPLY.format(client="x/#")
    assert topics.DASHBOARD_REPLY.format(client="dash-1") == "har/dashboard/dash-1/reply"


@pytest.mark.parametrize(
    "topic",
    ["har/#", "har/+/reply", "#", "", "$SYS/x", "a\nb", "a\x00b", "x" * 70_000, "a\x85b"],
)
def test_response_topics_that_cannot_be_published_to(topic: str) -> None:
    assert publish_topic_problem(topic) is not None


@pytest.mark.parametrize("topic", ["har/dashboard/abc/reply", "reply/é/x", "a b/c"])
def test_response_topics_that_can(topic: str) -> None:
    assert publish_topic_problem(topic) is None


def test_fast_formatter_and_splitter_agree_with_the_template() -> None:
    fmt, split = topics.PREDICTION.fast("har/x"), topics.PREDICTION.splitter("har/x")
    assert fmt("d-1") == topics.PREDICTION.format("har/x", device="d-1")
    assert split("har/x/d-1/prediction") == "d-1"
    for other in [
        "har/x/d-1/window",
        "har/x/a/b/prediction",
        "har/x//prediction",
        "har/d/prediction",
    ]:
        assert split(other) is None


def test_shared_subscriptions_and_the_whole_tree_come_from_the_protocol() -> None:
    assert topics.WINDOW.shared("clf", "har") == "$share/clf/har/+/window"
    assert topics.everything("har/x") == "har/x/#"
    for bad in ["a/b", "#", "", "x" * 65, "g\n"]:
        with pytest.raises(ValueError):
            topics.WINDOW.shared(bad)
    with pytest.raises(ValueError):
        topics.everything("har/#")


def test_a_template_outside_the_root_uses_its_own_default_root() -> None:
    assert topics.SENSOR_LOGGER.subscription() == topics.SENSOR_LOGGER_TOPIC
    assert topics.SENSOR_LOGGER_DEVICE.format(device="p1") == "sensor-logger/p1"
    assert topics.IMU.subscription() == "har/+/imu"
