"""Synthetic raw frames and read-back helpers for the recorder tests."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from imu_har.protocol.codec import Frame, encode_frame


def make_frame(
    device: str,
    seq: int,
    n: int = 5,
    rate: float = 50.0,
    t0: float = 1_795_000_000.0,
    device_time: bool = True,
) -> tuple[Frame, bytes]:
    """Frame ``seq`` of a steady stream: samples encode (seq, sample, channel) for checking."""
    base = seq * n
    samples = (
        np.arange(base, base + n, dtype=np.float32)[:, None] * 10
        + np.arange(9, dtype=np.float32)[None, :]
    ) % 100_000
    frame = Frame(
        device=device,
        seq=seq,
        receive_time=t0 + (base + n - 1) / rate,
        rate=rate,
        samples=samples.astype(np.float32),
        device_time=(base / rate) if device_time else None,
    )
    return frame, encode_frame(frame)


def read_recordings(data_dir: Path) -> pa.Table:
    """Every recorded row, read as a Hive-partitioned pyarrow dataset."""
    dataset = ds.dataset(
        data_dir / "recordings",
        format="parquet",
        partitioning=ds.HivePartitioning.discover(infer_dictionary=True),
    )
    return dataset.to_table()


def expected_rows(frames: list[Frame]) -> list[tuple[int, int, float]]:
    """(seq, sample, acc_x) of every sample of ``frames``, in order."""
    return [(f.seq, i, float(f.samples[i, 0])) for f in frames for i in range(f.samples.shape[0])]


def recorded_rows(table: pa.Table) -> list[tuple[int, int, float]]:
    """(seq, sample, acc_x) of every recorded row, ordered by time."""
    table = table.sort_by([("time", "ascending"), ("sample", "ascending")])
    return list(
        zip(
            table["seq"].to_pylist(),
            table["sample"].to_pylist(),
            table["acc_x"].to_pylist(),
            strict=True,
        )
    )


class FlakyDisk:
    """An ``os.write`` that fails with ENOSPC while ``full`` (after a partial write).

    ``room`` (bytes, None: unlimited) is a disk that is nearly full: writes
    succeed while they fit, and the first that does not is torn and fails, so
    a small record still goes in while a Parquet file no longer does.
    """

    def __init__(self) -> None:
        self.full = False
        self.room: int | None = None
        self.failures = 0

    def __call__(self, fd: int, data: bytes) -> int:
        room = self.room
        if self.full or (room is not None and len(data) > room):
            torn = len(data) // 2 if room is None else min(room, len(data) // 2)
            written = os.write(fd, data[:torn])  # a torn write, then the error
            if room is not None:
                self.room = room - written
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        if room is not None:
            self.room = room - len(data)
        return os.write(fd, data)
