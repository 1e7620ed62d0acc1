"""Model hot reload: load a new artifact in the background, swap it in between batches.

:class:`Reloader` loads on one worker thread while the service thread keeps
classifying with the current model; the service polls :meth:`Reloader.finished`
and swaps on its own thread, so no window waits for a load and none is dropped.
At most one load runs and one waits. :func:`reload_roots` and
:func:`allowed_target` say where reloads may point; :func:`newest_artifact`
picks what a watched directory offers: the directory itself or its newest
sub-directory holding ``spec.json``, identified by path and newest file time so
that a rewritten or completed artifact is seen again.
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
from services.classifier.settings import ClassifierSettings

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


def reload_roots(settings: ClassifierSettings) -> list[Path]:
    """Where reloads may point: ``--model-root``, else ``--model``'s parent and ``--watch-dir``.

    ``har up`` starts the classifier without ``--model-root``; a reload command
    could then name any directory on the machine (issue 12), so there is always
    a root.
    """
    if settings.model_root is not None:
        return [settings.model_root.expanduser().resolve()]
    roots = []
    if settings.model is not None:
        roots.append(settings.model.expanduser().resolve().parent)
    if settings.watch_dir is not None:
        roots.append(settings.watch_dir.expanduser().resolve())
    return roots


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves inside ``root`` (False for a path that does not resolve)."""
    try:
        resolved, base = path.expanduser().resolve(), root.expanduser().resolve()
    except (OSError, RuntimeError, ValueError):  # NUL byte, unknown ~user, symlink loop
        return False
    return resolved == base or base in resolved.parents


def allowed_target(path: Path, roots: list[Path], initial: Path | None) -> bool:
    """Whether a reload (or the active file) may name ``path``.

    Inside a reload root, or exactly the directory of ``--model``: in Compose the
    shipped demo (``/app/models/default``) lies outside ``--model-root /models``,
    and rolling back to it was refused. Only that directory, not its neighbours
    or sub-directories.
    """
    if any(inside(path, root) for root in roots):
        return True
    if initial is None:
        return False
    try:
        return path.expanduser().resolve() == initial.expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return False


def reload_refusal(model: str | None, roots: list[Path], initial: Path | None) -> str | None:
    """Why a reload of ``model`` is refused before loading, or None (untrusted text as %r)."""
    if not model:
        return "reload needs 'model': an artifact directory"
    if not allowed_target(Path(model), roots, initial):
        allowed = ", ".join(repr(str(root)) for root in roots) or "none"
        also = f", or --model {str(initial)!r} itself" if initial is not None else ""
        return f"{model!r} is outside the allowed --model-root ({allowed}){also}"
    return None


@dataclass
class ReloadRequest:
    """A load to do: what, and whom to answer."""

    path: str
    request: Any = None  # the command message to answer, if any
    key: ArtifactKey | None = None  # the watched-directory artifact it came from


class Reloader:
    """One background load at a time and at most one waiting; the service thread collects.

    600 reload commands in a burst once queued 600 loads and grew the classifier
    from 117 to 850 MB (issue 12): now a request that comes while a load runs
    waits in a single slot, and a newer one replaces it. :meth:`submit` returns
    the replaced request so that the service can refuse it.
    """

    def __init__(self, load: Callable[[str], LoadedModel]) -> None:
        self.load = load
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load")
        self._running: tuple[ReloadRequest, Future[ReloadResult]] | None = None
        self._waiting: ReloadRequest | None = None
        self.refused: set[ArtifactKey] = set()
        self.started = 0  # loads started since start-up

    @property
    def busy(self) -> bool:
        """A load is running, or waiting, or finished but not yet collected."""
        return self._running is not None or self._waiting is not None

    def submit(
        self, path: str, request: Any = None, key: ArtifactKey | None = None
    ) -> ReloadRequest | None:
        """Load ``path`` now, or after the running load; returns the request it replaced."""
        new = ReloadRequest(path, request, key)
        if self._running is None:
            self._start(new)
            return None
        replaced, self._waiting = self._waiting, new
        return replaced

    def _start(self, job: ReloadRequest) -> None:
        self.started += 1
        self._running = (job, self._pool.submit(self._run, job))

    def _run(self, job: ReloadRequest) -> ReloadResult:
        path, request, key = job.path, job.request, job.key
        try:
            return ReloadResult(path, self.load(path), None, request, key)
        except PayloadError as exc:
            return ReloadResult(path, None, str(exc), request, key)
        except Exception as exc:  # any failure refuses the artifact, never the service
            logger.exception("loading %r failed", path)
            return ReloadResult(path, None, f"{path}: {exc!r}", request, key)

    def finished(self) -> list[ReloadResult]:
        """The load completed since the last call, if any; starts the waiting one."""
        if self._running is None or not self._running[1].done():
            return []
        result = self._running[1].result()
        self._running = None
        if result.model is None and result.key is not None:
            self.refused.add(result.key)
        if self._waiting is not None:
            self._start(self._waiting)
            self._waiting = None
        return [result]

    def close(self) -> list[ReloadRequest]:
        """Stop the worker (a running load finishes first); returns the requests left unserved."""
        left = [job for job in (self._waiting,) if job is not None]
        if self._running is not None:
            left.insert(0, self._running[0])
        self._waiting = self._running = None
        self._pool.shutdown(wait=True, cancel_futures=True)
        return left
