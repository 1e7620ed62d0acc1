"""``har train``/``har tune`` flags come from :class:`TrainParams` (no TensorFlow here)."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

import pytest

from training.cli import _param_args, _params, train_main
from training.params import ARCHITECTURES, TrainParams


def parse(argv: list[str]) -> TrainParams:
    parser = argparse.ArgumentParser()
    _param_args(parser)
    return _params(parser.parse_args(argv))


def test_help_shows_the_real_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        train_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--window WINDOW window length in samples (default: 20)" in text
    assert "--hop HOP samples between windows (default: 5)" in text
    assert "--lr LR Adam learning rate (default: 0.0025)" in text
    assert "--batch-size BATCH_SIZE training batch size (default: 64)" in text
    assert "--rate RATE grid rate in Hz (unset: the data's rate column) " in text
    assert "{" + ",".join(ARCHITECTURES) + "}" in text
    assert "default 20" not in text  # no default restated by hand


def test_every_parameter_has_its_flag_with_its_type() -> None:
    argv = ["--arch", "cnn", "--window", "25", "--hop", "6", "--rate", "12.5", "--units", "8"]
    argv += ["--layers", "1", "--dropout", "0.25", "--noise", "0.1", "--lr", "0.01"]
    argv += ["--batch-size", "32", "--epochs", "3", "--seed", "7"]
    params = parse(argv)
    assert params == TrainParams(
        arch="cnn", window=25, hop=6, rate=12.5, units=8, layers=1, dropout=0.25,
        noise=0.1, lr=0.01, batch_size=32, epochs=3, seed=7,
    )  # fmt: skip
    assert len(argv) == 2 * len(fields(TrainParams))
    assert parse([]) == TrainParams()


def test_flags_override_params_file_and_bad_values_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"params": {"window": 30, "units": 16}}))
    params = parse(["--params", str(best), "--units", "4"])
    assert (params.window, params.units, params.hop) == (30, 4, TrainParams().hop)
    for bad in (["--arch", "transformer"], ["--window", "2.5"]):
        with pytest.raises(SystemExit):
            parse(bad)
