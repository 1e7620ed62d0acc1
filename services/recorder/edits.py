"""Edits of finished sessions: relabel, exclude from training, delete, set the counted reps.

The recorder owns the data directory, so these are recorder commands (the
dashboard's Sessions page sends them; it never writes there). Each edit works
on a *finished* session only (it has a manifest and is neither open nor being
finalized) and is atomic on disk:

- ``exclude`` and ``set_reps`` rewrite the manifest (temporary, fsync, rename).
- ``relabel`` changes the manifest's ``label`` *and* the ``label`` column of
  every Parquet part, so every reader agrees: the trainer, ``har train --data``,
  pandas or DuckDB reading the files directly. The parts are rewritten one
  row group at a time, each part atomically.
- ``delete`` removes the parts, then the manifest.

Relabel and delete touch several files. Each first writes an *intent*
(``.segments/edit-<session>.json``, atomically), does the work, then removes
the intent; :meth:`SessionEdits.resume` (at start) finishes any intent a crash
left behind, so a session is never left half relabelled or half deleted.
While a delete runs, its manifest says ``excluded: true`` and
``deleting: true`` so a reader skips it.

A session's parts are found by their names (``recordings/date=*/device=*/
<session>.parquet`` and ``<session>-NNNN.parquet``, regular files inside the
data directory), never by the paths a manifest lists: a manifest edited by hand
to list ``../../etc/passwd`` must not make a delete remove that file.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from imu_har.protocol.commands import (
    DeleteSession,
    ExcludeSession,
    RelabelSession,
    SessionEdit,
    SetReps,
)
from services.recorder import storage
from services.recorder.segments import WriteFn

logger = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 1 << 20  # the recorder writes ~1 KiB; a bigger file is not its own
_PART = re.compile(r"-\d{4}")


class EditError(Exception):
    """An edit that cannot be done; its text goes into the error reply."""


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest's JSON object; :class:`EditError` if it is missing, too big or not one."""
    try:
        if path.is_symlink() or not path.is_file():
            raise EditError("no such file")
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise EditError(f"over {MAX_MANIFEST_BYTES} bytes")
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise EditError(f"unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise EditError("not a JSON object")
    return data


class SessionEdits:
    """The edits of one data directory; ``write`` is how bytes reach the disk."""

    def __init__(self, data_dir: Path, write: WriteFn, counts: Counter[str]) -> None:
        self.data_dir = data_dir
        self.write = write
        self.counts = counts

    # -- the command ----------------------------------------------------------------------
    def apply(self, command: SessionEdit, allowed_labels: tuple[str, ...]) -> dict[str, Any]:
        """Carry out ``command`` on a finished session; raises :class:`EditError`.

        The caller has checked that the session is not open or being finalized.
        """
        session = command.session
        path = storage.manifest_path(self.data_dir, session)
        try:
            manifest = read_manifest(path)
        except EditError as exc:
            raise EditError(f"no finished session {session!r} (manifest: {exc})") from None
        if manifest.get("session") != session:
            raise EditError(f"manifest of {session!r} names another session")
        if isinstance(command, DeleteSession):
            return self._delete(session, manifest)
        if isinstance(command, RelabelSession):
            if allowed_labels and command.label not in allowed_labels:
                raise EditError(f"label {command.label!r} is not one of {list(allowed_labels)}")
            return self._relabel(session, manifest, command.label)
        if isinstance(command, ExcludeSession):
            manifest["excluded"] = command.excluded
        elif isinstance(command, SetReps):
            manifest["reps"] = command.reps
        self._write_manifest(session, manifest)
        self.counts[f"sessions_{command.action}"] += 1
        return _summary(manifest)

    # -- relabel ----------------------------------------------------------------------------
    def _relabel(self, session: str, manifest: dict[str, Any], label: str) -> dict[str, Any]:
        old = manifest.get("label")
        for part in self.parts(session):  # refuse before changing anything
            try:
                pq.read_schema(part)
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                raise EditError(f"part {part.name!r} of {session!r} is unreadable: {exc}") from None
        self._intent(session, {"action": "relabel", "label": label, "from": old})
        manifest["label"] = label
        rows = self._finish_relabel(session, manifest)
        self.counts["sessions_relabel"] += 1
        logger.info("session %s relabelled %r -> %r (%d rows)", session, old, label, rows)
        return _summary(manifest) | {"previous_label": old, "rows_rewritten": rows}

    def _finish_relabel(self, session: str, manifest: dict[str, Any]) -> int:
        """Manifest, then every part, then the intent gone (each step repeatable)."""
        label = str(manifest["label"])
        self._write_manifest(session, manifest)
        rows = 0
        for part in self.parts(session):
            rows += storage.rewrite_parquet_atomic(
                part, lambda table: _with_label(table, label), self.write
            )
        storage.remove_durably(self._intent_path(session))
        return rows

    # -- delete -------------------------------------------------------------------------------
    def _delete(self, session: str, manifest: dict[str, Any]) -> dict[str, Any]:
        self._intent(session, {"action": "delete"})
        parts = self._finish_delete(session, manifest)
        self.counts["sessions_delete"] += 1
        logger.info("session %s deleted (%d parts)", session, parts)
        return {"session": session, "deleted": True, "parts": parts}

    def _finish_delete(self, session: str, manifest: dict[str, Any] | None) -> int:
        if manifest is not None:  # readers skip it while its parts go
            self._write_manifest(session, manifest | {"excluded": True, "deleting": True})
        parts = self.parts(session)
        for part in parts:
            storage.remove_durably(part)
        storage.remove_durably(storage.manifest_path(self.data_dir, session))
        storage.remove_durably(self._intent_path(session))
        return len(parts)

    # -- recovery ------------------------------------------------------------------------------
    def resume(self) -> int:
        """Finish the edits a crash interrupted (at start); returns how many."""
        done = 0
        for intent_path in sorted((self.data_dir / storage.SEGMENTS).glob("edit-*.json")):
            session = intent_path.stem.removeprefix("edit-")
            try:
                intent = read_manifest(intent_path)
                manifest_path = storage.manifest_path(self.data_dir, session)
                manifest = read_manifest(manifest_path) if manifest_path.exists() else None
                if intent.get("action") == "delete":
                    self._finish_delete(session, manifest)
                elif intent.get("action") == "relabel" and manifest is not None:
                    manifest["label"] = intent["label"]
                    self._finish_relabel(session, manifest)
                else:
                    storage.remove_durably(intent_path)
            except (EditError, ValueError) as exc:  # a damaged file: kept, retried at next start
                logger.error("cannot resume the edit of session %r: %s", session, exc)
                continue
            logger.info("finished the interrupted %s of session %s", intent.get("action"), session)
            done += 1
        return done

    # -- files -----------------------------------------------------------------------------------
    def parts(self, session: str) -> list[Path]:
        """The session's Parquet parts: by name, regular files inside ``recordings/``."""
        base = self.data_dir / storage.RECORDINGS
        if not base.is_dir():
            return []
        inside = base.resolve()
        found = []
        for path in base.glob(f"date=*/device=*/{session}*.parquet"):
            tail = path.name[len(session) : -len(".parquet")]
            if tail and not _PART.fullmatch(tail):
                continue  # another session whose id starts with this one
            if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(inside):
                continue
            found.append(path)
        return sorted(found)

    def _intent_path(self, session: str) -> Path:
        return self.data_dir / storage.SEGMENTS / f"edit-{session}.json"

    def _intent(self, session: str, intent: dict[str, Any]) -> None:
        storage.write_json_atomic(
            intent | {"session": session}, self._intent_path(session), self.write
        )

    def _write_manifest(self, session: str, manifest: dict[str, Any]) -> None:
        storage.write_json_atomic(
            manifest, storage.manifest_path(self.data_dir, session), self.write
        )


def _with_label(table: pa.Table, label: str) -> pa.Table:
    """``table`` with every row's ``label`` set (same column type and position)."""
    index = table.schema.get_field_index("label")
    if index < 0:
        return table
    field = table.schema.field(index)
    return table.set_column(index, field, pa.array([label] * table.num_rows, field.type))


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
    keys = ("session", "device", "label", "subject", "rows", "excluded", "reps")
    return {k: manifest.get(k) for k in keys}
