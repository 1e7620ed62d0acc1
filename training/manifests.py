"""The recorder's session manifests as training reads them (no pandas: the trainer
service's own process reads them too, and TensorFlow and pandas stay in its child).

:func:`in_training` is the one rule of which sessions training may use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
SESSIONS = "sessions"  # DIR/sessions/<session>.json


def in_training(manifest: Mapping[str, Any]) -> bool:
    """Whether training may use the session: neither ``excluded`` nor being deleted."""
    return not manifest.get("excluded") and not manifest.get("deleting")


def read_manifests(data_dir: Path) -> list[dict[str, Any]]:
    """Every readable manifest of ``DIR/sessions``, by file name; unreadable ones are logged."""
    out = []
    for path in sorted((data_dir / SESSIONS).glob("*.json")):
        if path.name.startswith("."):  # a writer's temporary
            continue
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            logger.warning("unreadable manifest %r: %s", str(path), exc)
            continue
        if isinstance(manifest, dict):
            out.append(manifest)
        else:
            logger.warning("manifest %r is not a JSON object", str(path))
    return out


def training_manifests(data_dir: Path) -> list[dict[str, Any]]:
    """The readable manifests of the sessions training may use (:func:`in_training`)."""
    return [m for m in read_manifests(data_dir) if in_training(m)]
