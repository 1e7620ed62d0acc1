"""The recorder's data directory for training: its manifests, and chosen sessions.

A session chosen by ``har trainer`` (its training process) is read from the
Parquet parts its manifest lists (``files``, relative to the data directory:
docs/protocol.md, "Recordings"). The manifest's ``label`` and ``subject`` win
over the rows' columns: a relabelled session has both rewritten, but a
manifest edited by hand, or a relabel interrupted between its two steps, must
not train under the old label.

:func:`training.manifests.in_training` is the one rule of which sessions training may use (not
``excluded``, not ``deleting``): ``har train --data DIR`` (training.data) and
the counting evaluation (training.evaluation) both read manifests through it, and so does
the trainer service's catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from imu_har.protocol.messages import validate_name
from training.errors import DataError

logger = logging.getLogger(__name__)


def session_files(data_dir: Path, manifest: Mapping[str, Any]) -> list[Path]:
    """The session's Parquet parts; a path leaving ``data_dir`` is a :class:`DataError`."""
    root = data_dir.resolve()
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise DataError(f"session {manifest.get('session')!r} lists no Parquet files")
    out = []
    for rel in files:
        path = (root / str(rel)).resolve()
        if not path.is_relative_to(root) or path.suffix != ".parquet":
            raise DataError(f"session {manifest.get('session')!r}: file {str(rel)[:200]!r} refused")
        out.append(path)
    return out


def load_sessions(data_dir: str | Path, manifests: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One table of every row of the sessions, labelled as their manifests say."""
    data = Path(data_dir)
    parts = []
    for manifest in manifests:
        label = str(manifest.get("label"))
        try:
            validate_name(label)
        except ValueError:
            raise DataError(
                f"session {manifest.get('session')!r}: label {label[:80]!r} is not a name "
                "(1-64 letters, digits, spaces, '_' or '-'); relabel it"
            ) from None
        for path in session_files(data, manifest):
            try:
                table = pd.read_parquet(path)
            except Exception as exc:  # pyarrow raises many types for unreadable files
                raise DataError(f"cannot read {path.name}: {exc}") from exc
            table["session"] = str(manifest["session"])
            table["label"] = label
            if manifest.get("subject") is not None:  # the manifest wins, as for the label
                table["subject"] = str(manifest["subject"])
            if "device" in table.columns:
                table["device"] = table["device"].astype(str)
            parts.append(table)
    if not parts:
        raise DataError("no sessions to read")
    return pd.concat(parts, ignore_index=True)
