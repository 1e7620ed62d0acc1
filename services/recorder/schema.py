"""Arrow tables of recordings and predictions (docs/protocol.md, "Recordings (Parquet)").

Recordings have one row per sample. ``device`` is dictionary-encoded so that it
merges with the ``device=`` Hive partition key under pandas, pyarrow, polars
and DuckDB alike. ``time`` comes from :class:`imu_har.windowing.windows.DeviceClock`,
the same timeline the live windower uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pydantic_core

from imu_har.protocol.codec import Frame
from imu_har.windowing.clock import DeviceClock

RECORDING_COLUMNS: tuple[tuple[str, pa.DataType, bool], ...] = (
    ("session", pa.string(), False),
    ("device", pa.dictionary(pa.int32(), pa.string()), False),
    ("subject", pa.string(), True),
    ("label", pa.string(), False),
    ("seq", pa.uint32(), False),
    ("sample", pa.int16(), False),
    ("device_time", pa.float64(), True),
    ("receive_time", pa.float64(), False),
    ("time", pa.float64(), False),
    ("rate", pa.float32(), False),
)
PREDICTION_COLUMNS: tuple[tuple[str, pa.DataType, bool], ...] = (
    ("device", pa.string(), False),
    ("window_seq", pa.int64(), False),
    ("window_start", pa.float64(), False),
    ("window_end", pa.float64(), False),
    ("label", pa.string(), False),
    ("smoothed_label", pa.string(), False),
    ("confidence", pa.float64(), False),
    ("probabilities", pa.string(), False),  # JSON object {label: probability}
    ("model", pa.string(), False),
    ("model_version", pa.string(), False),
    ("latency_ms", pa.float64(), False),
    ("source_time", pa.float64(), False),
    ("classified_at", pa.float64(), False),
    ("received_at", pa.float64(), False),
)


@dataclass(frozen=True)
class SessionLabels:
    """The constant columns of a session's rows."""

    session: str
    device: str
    label: str
    subject: str | None


def recording_schema(channels: Sequence[str]) -> pa.Schema:
    """Schema of a recording file with these channel columns (float32)."""
    fields = [pa.field(n, t, nullable=null) for n, t, null in RECORDING_COLUMNS]
    fields += [pa.field(c, pa.float32(), nullable=False) for c in channels]
    return pa.schema(fields)


def frames_to_table(
    frames: Sequence[Frame], labels: SessionLabels, clock: DeviceClock, channels: Sequence[str]
) -> pa.Table:
    """Rows of ``frames`` (already deduplicated and ordered); advances ``clock``."""
    schema = recording_schema(channels)
    if not frames:
        return schema.empty_table()
    counts = np.array([f.samples.shape[0] for f in frames], dtype=np.int64)
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    sample = np.arange(total, dtype=np.int64) - starts
    rates = np.repeat(np.array([f.rate for f in frames], dtype=np.float64), counts)
    has_dt = np.repeat(np.array([f.device_time is not None for f in frames]), counts)
    dt0 = np.repeat(np.array([f.device_time or 0.0 for f in frames]), counts)
    times = np.concatenate(
        [
            clock.sample_times(f.samples.shape[0], f.rate, f.receive_time, f.device_time)
            for f in frames
        ]
    )
    samples = np.concatenate([f.samples for f in frames]).astype(np.float32, copy=False)
    columns: dict[str, pa.Array] = {
        "session": pa.array(np.full(total, labels.session, dtype=object), pa.string()),
        "device": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(total, dtype=np.int32)), pa.array([labels.device])
        ),
        "subject": pa.array([labels.subject] * total, pa.string()),
        "label": pa.array(np.full(total, labels.label, dtype=object), pa.string()),
        "seq": pa.array(np.repeat([f.seq for f in frames], counts).astype(np.uint32)),
        "sample": pa.array(sample.astype(np.int16)),
        "device_time": pa.array(dt0 + sample / rates, mask=~has_dt),
        "receive_time": pa.array(np.repeat([f.receive_time for f in frames], counts)),
        "time": pa.array(times),
        "rate": pa.array(rates.astype(np.float32)),
    }
    for index, name in enumerate(channels):
        columns[name] = pa.array(samples[:, index])
    return pa.Table.from_pydict(columns, schema=schema)


def predictions_to_table(rows: Sequence[tuple[dict[str, Any], float]]) -> pa.Table:
    """Rows of ``(prediction fields, received_at)`` pairs (fields as ``Prediction.model_dump``)."""
    schema = pa.schema([pa.field(n, t, nullable=null) for n, t, null in PREDICTION_COLUMNS])
    data: dict[str, list[Any]] = {
        name: [values[name] for values, _ in rows]
        for name, _, _ in PREDICTION_COLUMNS
        if name != "received_at"
    }
    data["probabilities"] = [  # compact JSON, keys sorted (pydantic_core: 2.5x json.dumps)
        pydantic_core.to_json(dict(sorted(p.items()))).decode() for p in data["probabilities"]
    ]
    data["received_at"] = [received_at for _, received_at in rows]
    return pa.Table.from_pydict(data, schema=schema)
