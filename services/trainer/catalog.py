"""Which recorded sessions a job trains on, and whether they can make a model (pure, no MQTT).

Reads the recorder's session manifests (``DIR/sessions/<session>.json``,
docs/protocol.md "Recordings") and turns a train command into a
:class:`Plan`, or refuses it with a :class:`RefusedError` that says why, before any
process starts: unknown or excluded sessions, sessions whose channels differ,
too little data, a label recorded in fewer than two groups (grouped validation
could not test it), parameters out of bounds. The checks estimate windows from
the manifests' row counts; the training process checks the rows themselves.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imu_har.protocol.commands import validate_name
from imu_har.protocol.trainer import SessionFilter, TrainCommand
from services.trainer.settings import TrainerConfig
from training.errors import DataError
from training.manifests import SESSIONS, in_training
from training.params import TrainParams

MAX_MANIFEST_BYTES = 1024 * 1024
KEPT = ("session", "device", "label", "subject", "files", "rows", "rate", "channels", "units")


class RefusedError(Exception):
    """A job that cannot run: ``reason`` is the counter slug, the message says why."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


@dataclass(frozen=True)
class Plan:
    """A checked job: what the training process needs, as JSON-ready values."""

    name: str
    sessions: list[dict[str, Any]]
    params: dict[str, Any]
    cv: int | str  # "logo" or the number of grouped folds
    folds: int
    grouping: str  # "subject" or "session"
    groups: dict[str, str]  # session id -> group kept apart by validation
    channels: list[str]

    def to_json(self) -> dict[str, Any]:
        """What the training process reads on its standard input."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def plan_job(command: TrainCommand, config: TrainerConfig) -> Plan:
    """Check ``command`` against the data directory and the bounds; :class:`RefusedError` if not."""
    manifests = select(command, config)
    channels = _channels(manifests)
    params = _params(command.params, config)
    grouping, groups = _grouping(command.cv, manifests)
    _check_labels(manifests, groups, grouping)
    _check_amount(manifests, params, config.min_windows_per_label)
    n_groups = len(set(groups.values()))
    cv: int | str
    if isinstance(command.cv, int):
        if command.cv > n_groups:
            raise RefusedError(
                "bad_cv", f"cv {command.cv} needs {command.cv} {grouping}s, found {n_groups}"
            )
        cv, folds = command.cv, command.cv
    else:
        folds = min(n_groups, config.max_folds)
        cv = "logo" if folds == n_groups else folds
    params_json = params.model_params()
    return Plan(command.name, manifests, params_json, cv, folds, grouping, groups, channels)


def select(command: TrainCommand, config: TrainerConfig) -> list[dict[str, Any]]:
    """The manifests of the chosen sessions (by id, by filter, or all), excluded ones out."""
    if command.sessions is not None and command.filter is not None:
        raise RefusedError("bad_command", "give 'sessions' or 'filter', not both")
    if command.sessions is not None:
        wanted = list(dict.fromkeys(command.sessions))
        found = {m["session"]: m for m in (read_manifest(config.data_dir, s) for s in wanted) if m}
        unknown = [s for s in wanted if s not in found]
        if unknown:
            raise RefusedError(
                "unknown_session", f"{len(unknown)} unknown session(s): {_few(unknown)}"
            )
        excluded = [s for s in wanted if not in_training(found[s])]
        if excluded:
            raise RefusedError(
                "excluded_session", f"session(s) excluded from training: {_few(excluded)}"
            )
        return [found[s] for s in wanted]
    chosen = [m for m in all_manifests(config) if _matches(m, command.filter)]
    chosen = [m for m in chosen if in_training(m)]
    if not chosen:
        raise RefusedError("no_sessions", "no finished, included session matches the selection")
    return chosen


def all_manifests(config: TrainerConfig) -> list[dict[str, Any]]:
    """Every readable manifest of the data directory (at most ``max_sessions``)."""
    folder = config.data_dir / SESSIONS
    if not folder.is_dir():
        return []
    names = sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith("."))
    if len(names) > config.max_sessions:
        raise RefusedError(
            "too_many_sessions",
            f"{config.data_dir} holds {len(names)} sessions, more than --max-sessions "
            f"{config.max_sessions}: select sessions by id",
        )
    return [m for m in (read_manifest(config.data_dir, n) for n in names) if m]


def read_manifest(data_dir: Path, session: str) -> dict[str, Any] | None:
    """The usable fields of ``DIR/sessions/<session>.json``, or None (missing, bad, deleting)."""
    try:
        validate_name(session)
        path = data_dir / SESSIONS / f"{session}.json"
        if path.is_symlink() or path.stat().st_size > MAX_MANIFEST_BYTES:
            return None
        raw = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or raw.get("session") != session or raw.get("deleting"):
        return None
    try:
        manifest: dict[str, Any] = {k: raw.get(k) for k in KEPT}
        manifest["excluded"] = raw.get("excluded") is True
        validate_name(str(manifest["label"]))
        if manifest["subject"] is not None:
            validate_name(str(manifest["subject"]))
        rows, rate = int(manifest["rows"]), float(manifest["rate"])
        channels = [str(c) for c in manifest["channels"]]
        files = [str(f) for f in manifest["files"]]
    except (TypeError, ValueError, KeyError):
        return None
    if rows < 0 or not math.isfinite(rate) or rate <= 0 or not channels or not files:
        return None
    return manifest | {"rows": rows, "rate": rate, "channels": channels, "files": files}


def _matches(manifest: Mapping[str, Any], chosen: SessionFilter | None) -> bool:
    if chosen is None:
        return True
    wanted = (chosen.labels, manifest["label"]), (chosen.subjects, manifest["subject"])
    if chosen.devices is not None and manifest["device"] not in chosen.devices:
        return False
    return all(values is None or value in values for values, value in wanted)


def _channels(manifests: list[dict[str, Any]]) -> list[str]:
    layouts = Counter(tuple(m["channels"]) for m in manifests)
    if len(layouts) > 1:
        (common, _), *others = layouts.most_common()
        odd = [m["session"] for m in manifests if tuple(m["channels"]) != common]
        raise RefusedError(
            "channels_mismatch",
            f"sessions record different channels: {list(common)} in most, "
            f"{[list(o) for o, _ in others][:3]} in {_few(odd)}",
        )
    return list(next(iter(layouts)))


def _params(raw: Mapping[str, Any], config: TrainerConfig) -> TrainParams:
    limits = {
        "epochs": config.max_epochs,
        "units": config.max_units,
        "layers": config.max_layers,
        "window": config.max_window,
    }
    known = set(TrainParams.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RefusedError(
            "bad_params", f"unknown parameters {_few(unknown)}; known: {sorted(known)}"
        )
    over = {
        k: v for k, v in raw.items() if k in limits and isinstance(v, int | float) and v > limits[k]
    }
    if over:
        raise RefusedError("bad_params", f"parameters over the trainer's limits {limits}: {over}")
    try:
        return TrainParams().with_overrides(**raw)
    except (DataError, TypeError, ValueError) as exc:
        raise RefusedError("bad_params", f"bad parameters: {exc}") from exc


def _grouping(cv: int | str | None, manifests: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    subjects = {m["session"]: m["subject"] for m in manifests}
    all_named = all(s is not None for s in subjects.values())
    if cv == "subject" and not all_named:
        missing = [s for s, subject in subjects.items() if subject is None]
        raise RefusedError("no_subject", f"cv by subject, but session(s) {_few(missing)} name none")
    if cv == "session" or not all_named or len(set(subjects.values())) < 2:
        if cv == "subject":
            raise RefusedError("too_few_groups", "cv by subject needs at least two subjects")
        return "session", {s: s for s in subjects}
    return "subject", {s: str(subject) for s, subject in subjects.items()}


def _check_labels(manifests: list[dict[str, Any]], groups: dict[str, str], grouping: str) -> None:
    by_label: dict[str, set[str]] = defaultdict(set)
    for m in manifests:
        by_label[m["label"]].add(groups[m["session"]])
    if len(by_label) < 2:
        raise RefusedError("too_few_labels", f"need at least two labels, found {sorted(by_label)}")
    lonely = {label: sorted(g) for label, g in by_label.items() if len(g) < 2}
    if lonely:
        raise RefusedError(
            "too_few_groups",
            f"label(s) recorded in only one {grouping}: {_few(lonely.items())}; grouped "
            f"validation needs each label in two {grouping}s or more: record it again",
        )


def estimated_windows(manifest: Mapping[str, Any], params: TrainParams) -> int:
    """Windows the session's rows give at the params' grid (its own rate when unset)."""
    rate = params.rate or manifest["rate"]
    samples = manifest["rows"] / manifest["rate"] * rate
    return max(0, math.floor((samples - params.window) / params.hop) + 1)


def _check_amount(manifests: list[dict[str, Any]], params: TrainParams, minimum: int) -> None:
    windows: Counter[str] = Counter()
    for m in manifests:
        windows[m["label"]] += estimated_windows(m, params)
    few = {label: n for label, n in windows.items() if n < minimum}
    if few:
        raise RefusedError(
            "too_little_data",
            f"too little data: label(s) with fewer than {minimum} windows of "
            f"{params.window} samples: {dict(sorted(few.items()))}; record longer sessions",
        )


def _few(items: Iterable[Any], n: int = 5) -> str:
    items = list(items)
    text = ", ".join(repr(i) if isinstance(i, str) else str(i) for i in items[:n])
    return text + (f" and {len(items) - n} more" if len(items) > n else "")
