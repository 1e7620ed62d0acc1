"""Home Assistant ids of a wearable: a collision-free map to ``[A-Za-z0-9_-]``.

Home Assistant's discovery topic levels (``node_id``, ``object_id``) must be
``[a-zA-Z0-9_-]`` (its MQTT integration page, "Discovery topic"); device ids
may also hold ``.`` and ``:`` (docs/protocol.md, "Device ids") and topic roots
``/``. So every character outside ``[A-Za-z0-9-]`` — ``_`` included — is
written as ``_`` and the two lowercase hex digits of each of its UTF-8 bytes:

    wrist-1        -> wrist-1
    aa:bb:cc       -> aa_3abb_3acc
    left.wrist_2   -> left_2ewrist_5f2

An ``_`` in the result is always followed by two hex digits, so the escaped
text never holds ``__``; the parts of an id are joined with ``__`` and split
back at the first ``__`` each time. Hence the map is injective (two wearables
never share an id), case-preserving, and the same on every run:

    node id    = imuhar__<escaped topic root>__<escaped device id>
    unique id  = <node id>__<entity key>          (keys are fixed: exercise, reps...)
"""

from __future__ import annotations

import re
from functools import lru_cache

PREFIX = "imuhar"
SEPARATOR = "__"
SAFE = re.compile(r"[A-Za-z0-9_-]+")
_KEEP = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")


def escape(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9-]`` as ``_`` + hex per UTF-8 byte."""
    if not text:
        raise ValueError("cannot escape an empty id")
    return "".join(
        ch if ch in _KEEP else "".join(f"_{b:02x}" for b in ch.encode("utf-8")) for ch in text
    )


def unescape(text: str) -> str:
    """The inverse of :func:`escape` (for tests and tools)."""
    out, i = bytearray(), 0
    while i < len(text):
        if text[i] == "_":
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out += text[i].encode()
            i += 1
    return out.decode("utf-8")


@lru_cache(maxsize=65536)
def node_id(root: str, device: str) -> str:
    """The wearable's discovery ``object_id``, its device identifier in Home Assistant."""
    node = SEPARATOR.join((PREFIX, escape(root), escape(device)))
    if not SAFE.fullmatch(node):  # cannot happen: escape() keeps only safe characters
        raise ValueError(f"node id {node!r} is not [A-Za-z0-9_-]")
    return node


def unique_id(node: str, key: str) -> str:
    """The ``unique_id`` of one entity (``key`` is one of the bridge's fixed entity keys)."""
    if not SAFE.fullmatch(key) or SEPARATOR in key or key.startswith("_"):
        raise ValueError(f"entity key {key!r} is not a plain [A-Za-z0-9_-] word")
    return f"{node}{SEPARATOR}{key}"


def split_node(node: str) -> tuple[str, str]:
    """``(root, device)`` of a node id made by :func:`node_id`; ValueError for anything else."""
    prefix, sep, rest = node.partition(SEPARATOR)
    root, sep2, device = rest.partition(SEPARATOR)
    if prefix != PREFIX or not (sep and sep2 and root and device):
        raise ValueError(f"{node!r} is not an imu-har node id")
    return unescape(root), unescape(device)
