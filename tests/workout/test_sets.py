"""A set counted again when it ends (services/workout/sets.py): which count stands."""

from __future__ import annotations

import numpy as np
import pytest

import services.workout.sets as sets_module
from imu_har.protocol.workout import RepEvent
from services.workout.bounds import SetCount
from services.workout.counter import Cycle
from services.workout.evidence import WindowVote
from services.workout.recount import SetTape
from services.workout.sets import OpenSet


def open_set(live: int) -> OpenSet:
    """A push-up set whose live counter published ``live`` repetitions 2 s apart."""
    opened = OpenSet("Pushup", 1, tape=SetTape(25.0, 60.0, 6))
    for k in range(live):
        t = 100.0 + 2.0 * k
        opened.reps.append(
            RepEvent(
                device="d",
                exercise="Pushup",
                set=1,
                rep=k + 1,
                start=t,
                end=t + 1.5,
                form="correct",
                confidence=0.9,
            )
        )
        opened.cycles.append(Cycle(t, t + 0.75, t + 1.5, 1.0, t + 1.8))
    return opened


def vote_at(end: float) -> WindowVote:
    """A 2 s window ending at ``end`` that calls push-ups."""
    return WindowVote(end - 2.0, end, {"Pushup": 0.9}, {}, 0.1, "Pushup", 0.9)


@pytest.mark.parametrize(
    ("again", "expected", "how"),
    [(3, 6, "recount_none"), (4, 4, "recount_fewer"), (7, 7, "recount_more")],
)
def test_a_recount_far_below_the_live_count_leaves_the_live_count(
    monkeypatch: pytest.MonkeyPatch, again: int, expected: int, how: str
) -> None:
    """A count of 3 for 6 live repetitions is a period the live ones do not bear out (a
    multiple of the true one: a set of 9 push-ups counted 3 and dropped as short)."""
    calls = []

    def recount(tape, start, end, exercise=None, hint=None):  # type: ignore[no-untyped-def]
        calls.append(hint)
        return SetCount(again, start, end, 2.0)

    monkeypatch.setattr(sets_module, "recount", recount)
    assert open_set(6).count(1.0, 1.0) == (expected, how)
    assert calls == [pytest.approx(2.0)]  # the live counter's period is the hint


def test_a_set_is_counted_again_only_when_it_has_grown(monkeypatch: pytest.MonkeyPatch) -> None:
    """A set of another exercise than the parked one is counted when it ends (is it
    short?) and when it is published: the second time costs nothing, unless the set went
    on (joined) and has more repetitions."""
    calls = []

    def recount(tape, start, end, exercise=None, hint=None):  # type: ignore[no-untyped-def]
        calls.append((start, end))
        return SetCount(7, start, end, 2.0)

    monkeypatch.setattr(sets_module, "recount", recount)
    opened = open_set(6)
    assert opened.count(1.0, 1.0) == opened.count(1.0, 1.0) == (7, "recount_more")
    assert len(calls) == 1
    grown = open_set(8)
    opened.reps.extend(grown.reps[6:])
    opened.cycles.extend(grown.cycles[6:])
    assert opened.count(1.0, 1.0) == (7, "recount_fewer")
    assert len(calls) == 2 and calls[1][1] > calls[0][1]


def test_a_parked_set_is_counted_again_on_what_its_tape_took_in_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A parked set's tape goes on taking in samples and windows (its last repetitions are
    found again from them): a count made when the set ended must not stand for the one
    made when it is published."""
    calls = []

    def recount(tape, start, end, exercise=None, hint=None):  # type: ignore[no-untyped-def]
        calls.append((len(tape.until(np.inf)[0]), len(tape.votes)))
        return SetCount(6, start, end, 2.0)

    monkeypatch.setattr(sets_module, "recount", recount)
    opened = open_set(6)
    opened.count(1.0, 1.0)
    assert opened.tape is not None
    opened.tape.add(np.array([120.0, 120.04]), np.zeros((2, 6)))
    opened.count(1.0, 1.0)
    opened.tape.votes.append(vote_at(121.0))
    opened.count(1.0, 1.0)
    opened.count(1.0, 1.0)
    assert calls == [(0, 0), (2, 0), (2, 1)]  # counted again on each change, not after
