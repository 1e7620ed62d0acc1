"""Append-only segment files: the recorder's write-ahead log.

A segment is a magic line followed by records ``kind (1 byte) | length (uint32)
| crc32 (uint32) | payload``. Records are buffered in memory and made durable
by :meth:`SegmentWriter.commit` — one ``write`` and one ``fsync`` per batch
(group commit). A failed write is rolled back with ``ftruncate`` and kept for
the next attempt, so the file only ever holds whole, committed records plus, at
worst after a crash, a torn tail that :func:`read_segment` detects by length and
checksum and cuts off.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

MAGIC = b"HARSEG1\n"
_RECORD = struct.Struct("<BII")  # kind, payload length, crc32 of payload
MAX_RECORD_BYTES = 16 * 1024 * 1024

WriteFn = Callable[[int, bytes], int]
"""``os.write``-compatible function; tests inject one that fails (ENOSPC)."""


def encode_record(kind: bytes, payload: bytes) -> bytes:
    """One record: header plus payload."""
    return _RECORD.pack(kind[0], len(payload), zlib.crc32(payload)) + payload


class SegmentWriter:
    """Buffered, group-committed appends to one segment file."""

    def __init__(
        self, path: Path, *, fsync: bool = True, write: WriteFn = os.write, create: bool = True
    ) -> None:
        self.path = path
        self.fsync = fsync
        self._write = write
        self._buffer = bytearray()
        flags = os.O_WRONLY | os.O_CREAT if create else os.O_WRONLY
        self._fd = os.open(path, flags, 0o644)
        self.size = os.lseek(self._fd, 0, os.SEEK_END)  # committed bytes
        if self.size == 0:
            self._buffer += MAGIC

    @property
    def dirty(self) -> bool:
        """Whether records are buffered but not yet durable."""
        return bool(self._buffer)

    def append(self, kind: bytes, payload: bytes) -> None:
        """Buffer one record (durable only after :meth:`commit`)."""
        self._buffer += encode_record(kind, payload)

    def commit(self) -> None:
        """Write the buffer and fsync once; on error roll back and keep the buffer."""
        if not self._buffer:
            return
        data = bytes(self._buffer)
        try:
            written = 0
            while written < len(data):
                written += self._write(self._fd, data[written:])
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            self._rollback()
            raise
        self.size += len(data)
        del self._buffer[: len(data)]

    def _rollback(self) -> None:
        try:
            os.ftruncate(self._fd, self.size)
            os.lseek(self._fd, self.size, os.SEEK_SET)
        except OSError as exc:  # the torn tail is cut again on recovery
            logger.warning("could not roll back %s: %s", self.path, exc)

    def close(self) -> None:
        """Close the file (uncommitted records are dropped: they were never acknowledged)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_segment(path: Path, repair: bool = True) -> list[tuple[bytes, bytes]]:
    """All whole records of a segment as ``(kind, payload)``; cuts a torn tail if ``repair``."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            data = b""  # crashed while writing the magic line
        else:
            raise ValueError(f"{path} is not a recorder segment")
    records: list[tuple[bytes, bytes]] = []
    offset = len(MAGIC) if data else 0
    while offset + _RECORD.size <= len(data):
        kind, length, crc = _RECORD.unpack_from(data, offset)
        start = offset + _RECORD.size
        payload = data[start : start + length]
        if length > MAX_RECORD_BYTES or len(payload) != length or zlib.crc32(payload) != crc:
            break
        records.append((bytes([kind]), payload))
        offset = start + length
    if repair and offset != len(data):
        logger.warning("cutting a torn tail of %d bytes from %s", len(data) - offset, path)
        with path.open("r+b") as handle:
            handle.truncate(offset)
            os.fsync(handle.fileno())
    return records
