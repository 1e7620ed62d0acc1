"""The windower follows only the model spec the online classifier serves (issue 12.5).

Pure tests of :class:`ModelFollower` for every arrival order, then the service
over a real Mosquitto: a hostile retained spec changes nothing, the classifier's
own spec and status (as ``services/classifier`` publishes them) are followed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from imu_har.protocol import topics
from imu_har.protocol.codec import Frame, decode_window, encode_frame
from imu_har.protocol.messages import ServiceStatus
from imu_har.protocol.model_spec import ModelSpec
from imu_har.runtime.client import Collector
from services.windower.app import WindowerSettings, build
from services.windower.follow import ModelFollower

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z", "mag_x", "mag_y", "mag_z"]
ROOT = "har"


def spec(version: str = "v1", window: int = 10, channels: list[str] | None = None) -> ModelSpec:
    """A model spec as the classifier retains it."""
    return ModelSpec(
        name="bilstm-test",
        version=version,
        labels=["Squat", "Pushup"],
        channels=channels or CHANNELS,
        window=window,
        hop=5,
        rate=50.0,
    )


def status(model: ModelSpec | None, state: str = "online") -> ServiceStatus:
    """The classifier's status: ``details["model"]`` as ``LoadedModel.describe()`` gives it."""
    details: dict[str, object] = {}
    if model is not None and state == "online":
        details["model"] = {
            "name": model.name,
            "version": model.version,
            "path": "/models/test",
            "backend": "onnx",
            "labels": list(model.labels),
            "channels": list(model.channels),
            "window": model.window,
            "hop": model.hop,
            "rate": model.rate,
        }
    return ServiceStatus.model_validate(
        {"service": "classifier", "instance": "classifier-test", "state": state, "details": details}
    )


def test_spec_first_waits_for_the_status_that_vouches_for_it() -> None:
    follower = ModelFollower(10.0)
    real = spec()
    assert follower.offer_spec(real, now=0.0) is None
    assert follower.offer_status(status(real)) == real
    assert follower.unconfirmed(now=100.0) is None


def test_status_first_then_the_spec_is_followed_at_once() -> None:
    follower = ModelFollower(10.0)
    real = spec()
    assert follower.offer_status(status(real)) is None
    assert follower.offer_spec(real, now=0.0) == real


def test_a_reload_is_followed_and_an_offline_classifier_keeps_its_spec() -> None:
    follower = ModelFollower(10.0)
    old, new = spec("v1"), spec("v2", window=25)
    follower.offer_status(status(old))
    assert follower.offer_spec(old, now=0.0) == old
    assert follower.offer_spec(new, now=1.0) is None  # the classifier's new spec, then ...
    assert follower.offer_status(status(new)) == new  # ... its status serving it
    assert follower.offer_status(status(None, state="offline")) is None
    assert follower.vouched is not None and follower.vouched["version"] == "v2"


def test_foreign_specs_are_never_followed_and_reported_once() -> None:
    follower = ModelFollower(10.0)
    real = spec()
    follower.offer_status(status(real))
    assert follower.offer_spec(real, now=0.0) == real
    hostile = spec("evil", window=4, channels=["x"])
    forged = spec("v1", window=4, channels=["x"])  # the real version, other windows
    assert follower.offer_spec(hostile, now=1.0) is None
    assert follower.offer_status(status(real)) is None  # the classifier still serves v1
    assert follower.offer_spec(forged, now=2.0) is None
    assert follower.unconfirmed(now=5.0) is None  # not yet: it may be a reload in flight
    assert follower.unconfirmed(now=12.5) == forged
    assert follower.unconfirmed(now=13.0) is None  # once


def test_a_spec_retained_while_no_classifier_is_online_waits_for_one() -> None:
    follower = ModelFollower(10.0)
    real = spec()
    follower.offer_status(status(None, state="offline"))  # its Last Will
    assert follower.offer_spec(real, now=0.0) is None
    assert follower.unconfirmed(now=11.0) == real  # reported: nobody serves it
    assert follower.offer_status(status(real)) == real  # the classifier came back


# -- the service over a real broker ------------------------------------------------------


def retain(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)


SPEC_TOPIC = topics.MODEL_SPEC.format(ROOT)
STATUS_TOPIC = topics.SERVICE_STATUS.format(ROOT, service="classifier")


@pytest.fixture()
def clean_retained(mqtt_client: mqtt.Client) -> Iterator[mqtt.Client]:
    """The broker is shared by the module: no retained spec or status outlives a test."""
    yield mqtt_client
    retain(mqtt_client, SPEC_TOPIC, b"")
    retain(mqtt_client, STATUS_TOPIC, b"")


def windower_details(statuses: Collector, **want: object):  # type: ignore[no-untyped-def]
    """Wait for a windower status whose details include ``want``; return those details."""

    def matches(messages: list[mqtt.MQTTMessage]) -> bool:
        if not messages:
            return False
        details = ServiceStatus.from_payload(messages[-1].payload).details
        return all(details.get(k) == v for k, v in want.items())

    statuses.wait_for(predicate=matches, timeout=15)
    return ServiceStatus.from_payload(statuses.messages[-1].payload)


def window_lengths(client: mqtt.Client, device: str) -> set[tuple[int, ...]]:
    """Publish 2 s of frames for ``device``; the (length, channels) of the windows made."""
    windows = Collector(client, topics.WINDOW.format(ROOT, device=device))
    t0 = time.time() - 5.0
    for seq in range(20):
        samples = np.full((5, 9), seq, np.float32)
        frame = Frame(device, seq, t0 + seq * 0.1, 50.0, samples, device_time=seq * 0.1)
        client.publish(topics.IMU.format(ROOT, device=device), encode_frame(frame), qos=1)
    got = windows.wait_for(10, timeout=15)
    return {decode_window(m.payload).samples.shape for m in got}


@pytest.mark.broker
def test_a_hostile_retained_spec_does_not_change_the_windows(broker, run_service, clean_retained):  # type: ignore[no-untyped-def]
    client = clean_retained
    statuses = Collector(client, topics.SERVICE_STATUS.format(ROOT, service="windower"))
    settings = WindowerSettings(mqtt_port=broker.port, status_interval=0.2, spec_confirm=0.5)
    run_service(*build(settings))
    real = spec("v1", window=10)
    retain(client, SPEC_TOPIC, real.to_payload())  # as the classifier does: spec, then status
    retain(client, STATUS_TOPIC, status(real).to_payload())
    windower_details(statuses, length=10, model="bilstm-test@v1")
    assert window_lengths(client, "wrist-1") == {(10, 9)}

    hostile = spec("evil", window=4, channels=["x"])
    retain(client, SPEC_TOPIC, hostile.to_payload())

    def refused(messages: list[mqtt.MQTTMessage]) -> bool:
        if not messages:
            return False
        rejected = ServiceStatus.from_payload(messages[-1].payload).counters.rejected
        return rejected.get("untrusted_spec") == 1

    # the windower has seen it, waited for a classifier to serve it, and refused it
    statuses.wait_for(predicate=refused, timeout=15)
    after = ServiceStatus.from_payload(statuses.messages[-1].payload).details
    assert (after["length"], after["channels"], after["model"]) == (10, CHANNELS, "bilstm-test@v1")
    assert window_lengths(client, "wrist-2") == {(10, 9)}


@pytest.mark.broker
def test_the_classifiers_own_spec_is_followed_in_either_order_and_through_a_reload(
    broker, run_service, clean_retained
):  # type: ignore[no-untyped-def]
    client = clean_retained
    statuses = Collector(client, topics.SERVICE_STATUS.format(ROOT, service="windower"))
    first = spec("v1", window=10)
    retain(client, STATUS_TOPIC, status(first).to_payload())  # status before spec, retained
    settings = WindowerSettings(mqtt_port=broker.port, status_interval=0.2, spec_confirm=0.5)
    run_service(*build(settings))
    windower_details(statuses, length=20)  # the settings' windows until the spec comes
    retain(client, SPEC_TOPIC, first.to_payload())
    windower_details(statuses, length=10, model="bilstm-test@v1")

    reloaded = spec("v2", window=25)  # a reload: the new spec, then the status serving it
    retain(client, SPEC_TOPIC, reloaded.to_payload())
    retain(client, STATUS_TOPIC, status(reloaded).to_payload())
    windower_details(statuses, length=25, model="bilstm-test@v2")
    retain(client, STATUS_TOPIC, status(None, state="offline").to_payload())  # its Last Will
    assert window_lengths(client, "wrist-3") == {(25, 9)}
    last = ServiceStatus.from_payload(statuses.messages[-1].payload)
    assert "untrusted_spec" not in last.counters.rejected
