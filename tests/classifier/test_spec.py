"""The retained model spec stays the classifier's own (issue 12.5), without republish loops."""

from __future__ import annotations

import json
import threading
import time

import pytest

from imu_har.protocol.codec import DEFAULT_CHANNELS
from imu_har.protocol.model_spec import ModelSpec, load_spec
from imu_har.runtime.client import Collector, connect
from services.classifier.specguard import SpecGuard
from tests.support.classifier import (
    Artifacts,
    send_command,
    start_classifier,
    status_where,
)

SPEC = "har/model/spec"


def make_spec(name: str, version: str, window: int = 20) -> ModelSpec:
    return ModelSpec(
        name=name,
        version=version,
        labels=["A", "B"],
        channels=list(DEFAULT_CHANNELS),
        window=window,
        hop=5,
        rate=50.0,
    )


def wait_until(condition, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``condition`` (state inside a running service) until it holds or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- the rule, without a broker ----------------------------------------------------------------
def test_own_spec_needs_nothing_and_a_foreign_one_is_answered_once_per_hold_off() -> None:
    own, other = make_spec("own", "v1"), make_spec("other", "v2")
    guard = SpecGuard(hold_off=10.0)
    guard.seen(own.to_payload(), own)
    assert guard.verdict(own, None, False, 0.0) is None
    guard.seen(other.to_payload(), own)
    first = guard.verdict(own, None, False, 0.0)
    assert first is not None and first.republish
    assert guard.verdict(own, None, False, 0.1) is None  # decided once per sighting
    guard.seen(other.to_payload(), own)  # it insists within the hold-off: not again yet
    again = guard.verdict(own, None, False, 5.0)
    assert again is not None and not again.republish
    guard.seen(other.to_payload(), own)
    later = guard.verdict(own, None, False, 20.0)
    assert later is not None and later.republish


@pytest.mark.parametrize(
    "payload",
    [
        make_spec("own", "v1", window=40).to_payload(),  # our version, other content
        b"",  # the retained spec was cleared
        b"{not a spec",
    ],
)
def test_same_version_other_content_cleared_or_invalid_is_foreign(payload: bytes) -> None:
    own = make_spec("own", "v1")
    guard = SpecGuard(hold_off=10.0)
    guard.seen(payload, own)
    verdict = guard.verdict(own, None, False, 0.0)
    assert verdict is not None and verdict.republish
    assert "\n" not in verdict.sighting.describe()


def test_a_reload_in_progress_or_the_previous_model_defers_the_decision() -> None:
    old, new = make_spec("m", "v1"), make_spec("m", "v2")
    guard = SpecGuard(hold_off=10.0)
    guard.seen(new.to_payload(), old)  # another replica swapped to v2 before us
    assert guard.verdict(old, None, True, 0.0) is None  # our own reload runs: wait
    assert guard.verdict(new, old, False, 1.0) is None  # it brought v2: nothing to answer
    assert guard.pending is None
    guard.seen(old.to_payload(), new)  # a replica still on v1 during our grace period
    assert guard.verdict(new, old, False, 2.0) is None and guard.pending is not None
    verdict = guard.verdict(new, None, False, 8.0)  # grace over, v1 still there: answer
    assert verdict is not None and verdict.republish


# -- over a real broker ------------------------------------------------------------------------
def specs_after(collector: Collector, start: int) -> list[ModelSpec | None]:
    """The spec messages from index ``start`` on (None for an empty or invalid one)."""
    out: list[ModelSpec | None] = []
    for message in collector.messages[start:]:
        try:
            out.append(ModelSpec.from_payload(message.payload) if message.payload else None)
        except ValueError:
            out.append(None)
    return out


def fresh_start(client) -> Collector:  # type: ignore[no-untyped-def]
    """No retained spec (an earlier test's), then a collector of every spec message."""
    client.publish(SPEC, b"", qos=1, retain=True).wait_for_publish(5)
    return Collector(client, SPEC)


def published(specs: Collector, spec: ModelSpec, count: int) -> None:
    """Wait until ``count`` classifiers have published ``spec`` on connect."""
    payload = spec.to_payload()
    got = specs.wait_for(
        timeout=10, predicate=lambda ms: sum(m.payload == payload for m in ms) >= count
    )
    assert sum(m.payload == payload for m in got) == count


def retained_spec(broker) -> ModelSpec | None:  # type: ignore[no-untyped-def]
    late = connect(broker.host, broker.port)
    try:
        got = Collector(late, SPEC).wait_for(1, timeout=5)
        return ModelSpec.from_payload(got[0].payload) if got and got[0].payload else None
    finally:
        late.disconnect()


@pytest.mark.broker
@pytest.mark.tf
def test_a_foreign_retained_spec_is_replaced_by_the_classifiers_own(
    broker, run_service, mqtt_client, artifacts: Artifacts
) -> None:  # type: ignore[no-untyped-def]
    own = load_spec(artifacts.first)
    specs = fresh_start(mqtt_client)
    counters = start_classifier(
        broker, run_service, artifacts.first, backend="onnx"
    ).runtime.counters
    published(specs, own, 1)
    foreign = [
        load_spec(artifacts.second).to_payload(),
        own.model_copy(update={"window": own.window * 2}).to_payload(),  # forged, same version
        json.dumps({"name": "x\nFORGED", "version": 1}).encode(),  # not a spec
        b"",  # cleared
    ]
    for n, payload in enumerate(foreign, start=1):
        start = len(specs.messages)
        mqtt_client.publish(SPEC, payload, qos=1, retain=True)
        specs.wait_for(timeout=10, predicate=lambda ms, s=start: own in specs_after(specs, s + 1))
        assert specs_after(specs, start + 1)[-1] == own, n
        assert retained_spec(broker) == own
        assert counters.get("foreign_spec") == n
    status = status_where(mqtt_client, lambda s: s["counters"]["rejected"].get("foreign_spec"))
    assert status["counters"]["rejected"]["foreign_spec"] == len(foreign)
    assert status["details"]["model"]["version"] == own.version


@pytest.mark.broker
@pytest.mark.tf
def test_replicas_of_one_model_never_answer_each_other(
    broker, run_service, mqtt_client, artifacts: Artifacts
) -> None:  # type: ignore[no-untyped-def]
    first, second = load_spec(artifacts.first), load_spec(artifacts.second)
    specs = fresh_start(mqtt_client)
    replicas = [
        start_classifier(
            broker, run_service, artifacts.first, backend="onnx", share_group="g", client_id=f"s{i}"
        )
        for i in range(2)
    ]
    published(specs, first, 2)
    # a foreign spec: each replica answers it once, and not each other's answer
    start = len(specs.messages)
    mqtt_client.publish(SPEC, second.to_payload(), qos=1, retain=True)
    counts = [r.runtime.counters for r in replicas]
    assert wait_until(lambda: all(c.get("foreign_spec") for c in counts))  # both answered
    assert len(specs.wait_for(start + 4, timeout=1.5)) == start + 3  # foreign + 2 answers, no more
    assert all(spec == first for spec in specs_after(specs, start + 1))
    assert [c.get("foreign_spec") for c in counts] == [1, 1]
    # a reload: replica 1 swaps first; replica 0, still loading, must not put v1 back
    held = replicas[0].handler
    gate, load = threading.Event(), held.reloader.load  # type: ignore[attr-defined]

    def held_load(path: str):  # type: ignore[no-untyped-def]
        gate.wait(60)
        return load(path)

    held.reloader.load = held_load  # type: ignore[attr-defined]
    start = len(specs.messages)
    try:
        send_command(mqtt_client, {"action": "reload", "model": str(artifacts.second)}, None)
        specs.wait_for(timeout=30, predicate=lambda ms: second in specs_after(specs, start))
        # replica 0 sees replica 1's new spec while its own load still runs
        assert wait_until(lambda: held.spec.guard.pending is not None)  # type: ignore[attr-defined]
    finally:
        gate.set()
    for replica in replicas:
        assert wait_until(lambda r=replica: r.handler.core.model.spec == second)  # type: ignore[attr-defined]
    later = len(specs.wait_for(start + 3, timeout=1.5))
    assert all(spec == second for spec in specs_after(specs, start))  # never the old one back
    assert later <= start + 2  # one publication per replica's swap
    assert [r.runtime.counters.get("foreign_spec") for r in replicas] == [1, 1]
    assert retained_spec(broker) == second
