"""The active model's record: what a reload command made live, served again after a restart.

The dashboard's Models page activates a model with the classifier's reload
command; the classifier used to start from ``--model`` again after any restart
(``docker compose restart``, ``har up`` restarting it after a crash, a reboot)
and silently went back to the demo model. Now, after a successful reload by
command, :meth:`ActiveFile.record` writes ``<model root>/<--active-file>``
(default ``active.json``): ``{"path", "version", "name", "activated_at"}``,
through a temporary file in the same directory, fsync and a rename, so a crash
leaves the old record or the new one, never half of one.

At start :meth:`ActiveFile.choose` serves that artifact instead of ``--model``
when it may be reloaded (inside the reload root, or ``--model`` itself), loads,
passes the probe and has the recorded version. Anything else (garbage, a path
outside the root by ``..`` or a symlink, a directory that is no artifact, a
symlinked or oversized record, another version) is ignored: the classifier
serves ``--model``, logs why and counts it (``bad_active_file``).
``--ignore-active-file`` starts from ``--model`` whatever the record says.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imu_har.protocol.errors import PayloadError
from imu_har.runtime.skeleton import StartupError
from services.classifier.model import LoadedModel, load_model
from services.classifier.reload import allowed_target, newest_artifact, reload_roots
from services.classifier.settings import ClassifierSettings

logger = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024  # a record is ~200 bytes; anything this large is not ours
Loader = Callable[[Path, ClassifierSettings], LoadedModel]


class ActiveFileError(Exception):
    """The active file cannot be used: ``reason`` (a slug) and a readable ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def active_path(settings: ClassifierSettings) -> Path | None:
    """``<first reload root>/<--active-file>``; None when the classifier has no root."""
    roots = reload_roots(settings)
    return roots[0] / settings.active_file if roots else None


def read_record(path: Path) -> dict[str, str] | None:
    """The record in ``path`` (``path`` and ``version``); None when there is none.

    The file itself must be a regular file, not a symlink (``O_NOFOLLOW``) and
    not a FIFO that would block the start (``O_NONBLOCK``).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symlink; EACCES, ...
        raise ActiveFileError("unreadable", f"{str(path)!r}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ActiveFileError("unreadable", f"{str(path)!r} is not a regular file")
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise ActiveFileError("unreadable", f"{str(path)!r} is larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:  # also bad UTF-8
        raise ActiveFileError("bad_json", f"{str(path)!r}: {exc}") from None
    fields = data if isinstance(data, dict) else {}
    found = {key: fields.get(key) for key in ("path", "version")}
    if not all(isinstance(v, str) and 0 < len(v) <= 4096 and "\0" not in v for v in found.values()):
        raise ActiveFileError("bad_json", f"{str(path)!r} needs 'path' and 'version' strings")
    return {key: str(value) for key, value in found.items()}


def write_record(path: Path, model: LoadedModel) -> None:
    """Record ``model`` in ``path`` atomically (temporary file, fsync, rename); OSError if not.

    ``mkstemp`` makes a new file (``O_EXCL``) and the rename replaces the
    directory entry: a symlink planted at ``path`` is replaced, never written through.
    """
    record = {
        "path": str(model.path),
        "version": model.spec.version,
        "name": model.spec.name,
        "activated_at": time.time(),
    }
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(record, indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # nothing secret; people and tools may read it
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


class ActiveFile:
    """Where the active model is recorded, and what became of the record at start."""

    def __init__(self, settings: ClassifierSettings) -> None:
        """The record of ``settings``' reload root (none without a root)."""
        self.settings = settings
        self.path = active_path(settings)
        self.source = "model"  # of the start model: active_file, model or watch_dir
        self.restored = False  # the start model came from the record
        self.ignored: ActiveFileError | None = None  # why the record was not used
        self.recorded = 0  # records written since start
        self.error: str | None = None  # the last failure to write one

    def choose(self, load: Loader = load_model) -> LoadedModel:
        """The model to start with; :attr:`source` says where it came from.

        Raises :class:`StartupError` when neither the record nor ``--model``
        (or ``--watch-dir``) gives a model that loads.
        """
        if self.path is not None and not self.settings.ignore_active_file:
            try:
                model = self._restore(self.path, load)
            except ActiveFileError as exc:
                self.ignored = exc
                logger.warning(
                    "active file %r ignored (%s): %s; serving the start model instead",
                    str(self.path),
                    exc.reason,
                    exc.detail,
                )
            else:
                if model is not None:
                    self.restored, self.source = True, "active_file"
                    logger.info(
                        "serving %r from %r: activated by a reload command before this start",
                        model.key,
                        str(self.path),
                    )
                    return model
        model, self.source = start_model(self.settings, load)
        return model

    def _restore(self, path: Path, load: Loader) -> LoadedModel | None:
        record = read_record(path)
        if record is None:
            logger.info("no active file %r: serving the start model", str(path))
            return None
        named = Path(record["path"])
        target = named if named.is_absolute() else path.parent / named
        roots, initial = reload_roots(self.settings), self.settings.model
        if not allowed_target(target, roots, initial):
            raise ActiveFileError("outside_root", f"{record['path']!r} may not be reloaded")
        try:
            model = load(target.resolve(), self.settings)
        except PayloadError as exc:
            raise ActiveFileError("unloadable", f"{record['path']!r}: {exc}") from None
        except Exception as exc:  # any failure ignores the record, never stops the start
            logger.exception("loading %r from the active file failed", record["path"])
            raise ActiveFileError("unloadable", f"{record['path']!r}: {exc!r}") from None
        if model.spec.version != record["version"]:
            raise ActiveFileError(
                "version_mismatch",
                f"{record['path']!r} holds version {model.spec.version!r}, "
                f"the record {record['version']!r}",
            )
        return model

    def record(self, model: LoadedModel) -> str | None:
        """Record ``model`` as the active one; the error text if that failed."""
        if self.path is None:
            return None
        try:
            write_record(self.path, model)
        except OSError as exc:
            self.error = f"cannot record the active model in {str(self.path)!r}: {exc}"
            return self.error
        self.recorded += 1
        return None

    def watch_key(self) -> tuple[str, int] | None:
        """With ``--watch-dir``: its newest artifact now; only a newer one replaces the record's."""
        watch_dir = self.settings.watch_dir
        return newest_artifact(watch_dir) if self.restored and watch_dir is not None else None

    def describe(self) -> dict[str, Any]:
        """The status view: the file, whether the start model came from it, and why not."""
        return {
            "start": self.source,
            "path": str(self.path) if self.path is not None else None,
            "restored": self.restored,
            "ignored": self.ignored.reason if self.ignored else None,
            "ignored_detail": self.ignored.detail if self.ignored else None,
            "recorded": self.recorded,
            "error": self.error,
        }


def start_model(settings: ClassifierSettings, load: Loader = load_model) -> tuple[LoadedModel, str]:
    """``--model``, else the newest artifact in ``--watch-dir``; :class:`StartupError` if none."""
    path, source = settings.model, "model"
    if path is None and settings.watch_dir is not None:
        key = newest_artifact(settings.watch_dir)
        path, source = (Path(key[0]) if key else None), "watch_dir"
    if path is None:
        raise StartupError("no model: give --model or a --watch-dir with one")
    try:
        model = load(path, settings)
    except PayloadError as exc:
        raise StartupError(str(exc)) from exc
    logger.info("serving %r with %s from %r", model.key, model.backend.name, str(model.path))
    return model, source
