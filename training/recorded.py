"""Reading chosen sessions of the recorder's data directory (``har trainer``'s child).

A session is read from the Parquet parts its manifest lists (``files``,
relative to the data directory: docs/protocol.md, "Recordings"). The
manifest's ``label`` and ``subject`` win over the rows' columns: a relabelled
session has both rewritten, but a manifest edited by hand, or a relabel
interrupted between its two steps, must not train under the old label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from training.errors import DataError


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
        for path in session_files(data, manifest):
            try:
                table = pd.read_parquet(path)
            except Exception as exc:  # pyarrow raises many types for unreadable files
                raise DataError(f"cannot read {path.name}: {exc}") from exc
            table["session"] = str(manifest["session"])
            table["label"] = str(manifest["label"])
            if "device" in table.columns:
                table["device"] = table["device"].astype(str)
            parts.append(table)
    if not parts:
        raise DataError("no sessions to read")
    return pd.concat(parts, ignore_index=True)
