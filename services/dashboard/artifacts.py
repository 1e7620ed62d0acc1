"""Where the Models page finds artifacts: the trainer's ``list`` reply, else the models directory.

The trainer writes the artifacts, so while it is online its ``list`` reply is
the listing and the dashboard needs no models volume (Docker Compose mounts
none). Without it the page reads ``--models-dir`` itself (``har up`` runs
everything on one machine, where the paths are the classifier's too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from imu_har.protocol import topics
from imu_har.protocol.model_spec import SPEC_FILE
from imu_har.protocol.trainer import TrainerQuery
from services.dashboard.connection import Connection
from services.dashboard.models import (
    MAX_ARTIFACTS,
    Artifact,
    from_list_item,
    list_directory,
    read_artifact,
)
from services.dashboard.settings import DashboardSettings
from services.dashboard.text import code

logger = logging.getLogger(__name__)

LIST_TIMEOUT = 5.0  # s to wait for the trainer's list reply


@dataclass(frozen=True)
class Listing:
    """Artifacts, newest first, and a line saying where they came from."""

    artifacts: list[Artifact]
    source: str


def listing(conn: Connection, config: DashboardSettings) -> Listing:
    """The trainer's list when it is online and answers, else the models directory."""
    snapshot = conn.store.snapshot()
    status, trainer = snapshot["services"].get("trainer"), snapshot["trainer_status"]
    if status is not None and status.state == "online":
        reply = conn.request(topics.TRAINER_CMD, TrainerQuery(action="list"), LIST_TIMEOUT)
        if reply is not None and reply.ok:
            where = f" {code(trainer.models_dir)}" if trainer is not None else ""
            return Listing(from_reply(reply.data), f"From the trainer (models in{where}).")
    found = list_directory(config.models_dir)
    where = code(config.models_dir.resolve())
    return Listing(found, f"From {where} (the trainer is not online).")


def from_reply(data: dict[str, Any]) -> list[Artifact]:
    """Artifacts of a trainer ``list`` reply (``models``: path, name, labels, ``score``)."""
    items = data.get("models")
    if not isinstance(items, list):
        return []
    found = (from_list_item(item) for item in items[:MAX_ARTIFACTS] if isinstance(item, dict))
    return [a for a in found if a is not None]


def details(artifact: Artifact, models_dir: Path) -> Artifact:
    """The artifact from its own ``spec.json`` (confusion matrix, what it was trained on) when
    it lies in the dashboard's ``models_dir``; else as listed (the trainer lists the scores).

    A path in a ``list`` reply came over MQTT: only the models directory is read.
    """
    path = Path(artifact.path)
    if artifact.error is None and _inside(path, models_dir) and (path / SPEC_FILE).is_file():
        full = read_artifact(path)
        if full.error is None:
            return replace(full, path=artifact.path)
    return artifact


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):  # a loop of links, a NUL byte
        return False
