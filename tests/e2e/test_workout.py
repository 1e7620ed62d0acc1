"""Workouts end to end: realistic simulated sets -> gateway -> windower -> classifier -> workout.

Real processes around a real Mosquitto: ``har gateway --source sim
--sim-style realistic`` (six wearers, each doing a set of sit-ups, squats and
lunges with rests between, as people do them: getting into position, uneven
and partial repetitions, pauses, tired form), ``har windower``, ``har
classifier --model models/default``, ``har workout`` and ``har recorder``. The
gateway's ground truth (``har/<dev>/truth``) counts each completed repetition;
each true set is matched with the ``SetEvent`` s whose time overlaps it, and
their repetitions are compared with the truth's.

**What is asserted, honestly.** Issue 15 asks for ±1 on 95% of sets.
Measured here on this 2-core machine (seed 7, 2026-12-04 18:05 UTC, with the
demo model trained on 24 workouts): six wearers, 18 sets: all found, all
within ±1, 78-83% exact (two runs). With the former demo model (6 workouts): all found,
within ±2 94%, within ±1 89%, exact 72% (a squat set counted 6 of 16: that
model called its second half lunges, long enough for a lunge set of its own).
Earlier the same day, after the first end-of-set recount: 89%
found, 83%, 67%, 39%; before it: 83% within ±2, 61% within ±1, 11% exact. The
test asserts floors a broken pipeline fails and the present
counter passes with a margin (a run is 18 sets: one set is 6%): at least
``MIN_FOUND`` of the true sets found, ``MIN_WITHIN_TWO`` within ±2 and
``MIN_WITHIN_ONE`` within ±1; the numbers are printed. Raise them as the
counting improves.

The recorder logs every repetition and set the observer received, once each.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from imu_har.protocol import topics
from imu_har.protocol.messages import GroundTruth
from imu_har.protocol.workout import RepEvent, SetEvent, split_form
from imu_har.runtime.client import Collector, connect
from tests.support.system import DEFAULT_MODEL, Observer, persistent_broker, running_system

pytestmark = [pytest.mark.slow, pytest.mark.broker]

DEVICES = [f"sim-{n:03d}" for n in range(1, 7)]
EXERCISES = ["Situp", "Squat", "Lunge"]
# Exercise seconds are placeholders in the realistic style: a set lasts until its reps are done.
SCHEDULE = "rest:6,Situp:1,rest:15,Squat:1,rest:15,Lunge:1,rest:15"
MIN_FOUND, MIN_WITHIN_TWO, MIN_WITHIN_ONE = 0.85, 0.8, 0.75
MARGIN = 2.0  # s: set events and truth are on slightly different clocks (pacing, anchoring)


def true_sets(truths: list[GroundTruth]) -> list[tuple[str, float, float, int]]:
    """(exercise, first truth, last repetition's end, repetitions) of each finished exercise
    bout (the next bout has started)."""
    out, bout = [], [truths[0]] if truths else []
    for truth in truths[1:]:
        if truth.label != bout[0].label:
            counted = [t for t in bout if t.rep > 0]
            if bout[0].label != "rest" and counted:
                exercise = split_form(bout[0].label)[0]
                out.append((exercise, bout[0].time, counted[-1].time, counted[-1].rep))
            bout = []
        bout.append(truth)
    return out


def found(sets: list[SetEvent], exercise: str, start: float, end: float) -> list[SetEvent]:
    """The set events of ``exercise`` that overlap ``[start, end]``."""
    return [
        s
        for s in sets
        if s.exercise == exercise and s.start <= end + MARGIN and s.end >= start - MARGIN
    ]


def the_loop_came_round(observer: Observer) -> bool:
    """Every device has done the whole schedule and started it again (Situp a second time)."""
    for device in DEVICES:
        labels = [t.label for t in observer.truths.get(device, [])]
        changes = [b for a, b in zip([None, *labels], labels, strict=False) if a != b]
        if changes.count("Situp") < 2:
            return False
    return True


def test_realistic_sets_are_counted_live_and_logged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with (
        persistent_broker() as broker,
        running_system(broker, tmp_path) as (observer, system),
    ):
        events = connect(broker.host, broker.port, client_id="e2e-workout-events")
        reps = Collector(events, topics.REP.subscription())
        sets = Collector(events, topics.SET.subscription())
        system.start("classifier", "--model", str(DEFAULT_MODEL))
        system.start("windower")
        system.start("workout")
        system.start("recorder", "--data-dir", str(data_dir))
        gateway = ["--devices", str(len(DEVICES)), "--sim-style", "realistic"]
        system.start("gateway", *gateway, "--schedule", SCHEDULE, "--seed", "7")
        observer.wait(lambda: the_loop_came_round(observer), 420, "the schedule never came round")
        time.sleep(1.0)  # the last set events on their way
        system.stop_cleanly()
        events.loop_stop()
        events.disconnect()

    set_events = [SetEvent.from_payload(m.payload) for m in sets.wait_for(0, timeout=0)]
    rep_events = [RepEvent.from_payload(m.payload) for m in reps.wait_for(0, timeout=0)]
    by_device: dict[str, list[SetEvent]] = defaultdict(list)
    for event in set_events:
        by_device[event.device].append(event)
    results = []  # (device, exercise, true reps, found reps)
    for device in DEVICES:
        truth = true_sets(observer.truths[device])
        assert [t[0] for t in truth][:3] == EXERCISES, (device, truth)
        for exercise, start, end, count in truth[:3]:
            matched = found(by_device[device], exercise, start, end)
            results.append((device, exercise, count, sum(s.reps for s in matched)))
    print(f"(device, exercise, true reps, counted): {results}")
    errors = [abs(counted - true) for *_, true, counted in results]
    share = {
        "found": sum(counted > 0 for *_, counted in results) / len(results),
        "within 2": sum(e <= 2 for e in errors) / len(errors),
        "within 1": sum(e <= 1 for e in errors) / len(errors),
        "exact": sum(e == 0 for e in errors) / len(errors),
    }
    print(f"of {len(results)} sets: " + ", ".join(f"{k} {v:.0%}" for k, v in share.items()))
    assert share["found"] >= MIN_FOUND, results
    assert share["within 2"] >= MIN_WITHIN_TWO, results
    assert share["within 1"] >= MIN_WITHIN_ONE, results
    assert {r.device for r in rep_events} == set(DEVICES)

    # the recorder logged every event once, beside its predictions
    logged_reps = pd.read_parquet(data_dir / "reps")
    logged_sets = pd.read_parquet(data_dir / "sets")
    assert len(logged_reps) == len(rep_events) and len(logged_sets) == len(set_events)
    keys = {(r.device, r.set, r.rep) for r in rep_events}
    assert (
        set(zip(logged_reps["device"], logged_reps["set"], logged_reps["rep"], strict=True)) == keys
    )
    assert sorted(logged_sets["reps"]) == sorted(s.reps for s in set_events)
    assert not list(data_dir.glob("sessions/*.json"))  # no session was recorded: none is needed
