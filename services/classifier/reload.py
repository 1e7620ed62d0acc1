"""Model hot reload: load a new artifact in the background, swap it in between batches.

:class:`Reloader` loads on one worker thread while the service thread keeps
classifying with the current model; the service polls :meth:`Reloader.finished`
and swaps on its own thread, so no window waits for a load and none is dropped.
:func:`newest_artifact` picks what a watched directory offers: the directory
itself or its newest sub-directory holding ``spec.json``, identified by path and
newest file time so that a rewritten or completed artifact is seen again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.model_spec import SPEC_FILE
from services.classifier.model import LoadedModel

logger = logging.getLogger(__name__)

ArtifactKey = tuple[str, int]


@dataclass
class ReloadResult:
    """A finished load: the model, or the error that refused it."""

    path: str
    model: LoadedModel | None
    error: str | None
    request: Any = None  # the command message to answer, if any
    key: ArtifactKey | None = None  # the watched-directory artifact it came from


def artifact_key(path: Path) -> ArtifactKey | None:
    """``(path, newest file mtime)`` of an artifact directory, ``None`` if not one."""
    try:
        if not (path / SPEC_FILE).is_file():
            return None
        newest = max(f.stat().st_mtime_ns for f in path.iterdir() if f.is_file())
    except (OSError, ValueError):
        return None
    return (str(path.resolve()), newest)


def newest_artifact(watch_dir: Path) -> ArtifactKey | None:
    """The most recently written artifact in ``watch_dir`` (itself or a sub-directory)."""
    keys = [artifact_key(watch_dir)]
    try:
        keys += [
            artifact_key(p)
            for p in watch_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".")  # skip save_artifact's .partial-*
        ]
    except OSError:
        return None
    found = [k for k in keys if k is not None]
    return max(found, key=lambda k: (k[1], k[0])) if found else None


def inside(path: Path, root: Path | None) -> bool:
    """Whether ``path`` resolves inside ``root`` (always, when there is no root)."""
    if root is None:
        return True
    resolved, base = path.expanduser().resolve(), root.expanduser().resolve()
    return resolved == base or base in resolved.parents


class Reloader:
    """One background loader; results are collected by the service thread."""

    def __init__(self, load: Callable[[str], LoadedModel]) -> None:
        self._load = load
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load")
        self._futures: list[Future[ReloadResult]] = []
        self.refused: set[ArtifactKey] = set()

    @property
    def busy(self) -> bool:
        """A load is queued or running."""
        return any(not f.done() for f in self._futures)

    def submit(self, path: str, request: Any = None, key: ArtifactKey | None = None) -> None:
        """Start loading ``path`` in the background."""
        self._futures.append(self._pool.submit(self._run, path, request, key))

    def _run(self, path: str, request: Any, key: ArtifactKey | None) -> ReloadResult:
        try:
            return ReloadResult(path, self._load(path), None, request, key)
        except PayloadError as exc:
            return ReloadResult(path, None, str(exc), request, key)
        except Exception as exc:  # any failure refuses the artifact, never the service
            logger.exception("loading %s failed", path)
            return ReloadResult(path, None, f"{path}: {exc!r}", request, key)

    def finished(self) -> list[ReloadResult]:
        """Results of loads completed since the last call, in submission order."""
        done: list[ReloadResult] = []
        while self._futures and self._futures[0].done():
            result = self._futures.pop(0).result()
            if result.model is None and result.key is not None:
                self.refused.add(result.key)
            done.append(result)
        return done

    def close(self) -> None:
        """Stop the worker (a running load finishes first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
