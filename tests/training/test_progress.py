"""Progress events: text for a person, fields for a program (``har trainer``'s child)."""

from __future__ import annotations

from training.fit import ProgressEvent, event_fields, with_fields


def test_an_event_is_its_text_and_carries_its_fields() -> None:
    event = ProgressEvent("  epoch 3/30  loss 0.5000", kind="epoch", epoch=3, epochs=30)
    lines: list[str] = []
    lines.append(event)  # any text sink keeps working
    assert lines == ["  epoch 3/30  loss 0.5000"] and isinstance(event, str)
    assert event_fields(event) == {"kind": "epoch", "epoch": 3, "epochs": 30}
    assert event_fields("plain text") == {"message": "plain text"}


def test_with_fields_adds_the_context_and_keeps_the_text() -> None:
    got: list[str] = []
    sink = with_fields(got.append, phase="cv", fold=2)
    assert sink is not None and with_fields(None, fold=1) is None
    sink(ProgressEvent("epoch 1/2", kind="epoch", epoch=1))
    sink("a message")
    assert got == ["epoch 1/2", "a message"]
    assert event_fields(got[0]) == {"kind": "epoch", "epoch": 1, "phase": "cv", "fold": 2}
    assert event_fields(got[1]) == {"message": "a message", "phase": "cv", "fold": 2}
