"""Raw calibration samples: one row per timed call, written to Parquet.

Columns of ``samples.parquet`` (and of ``samples.partial.parquet`` after an interrupted run):

| column | type | meaning |
| --- | --- | --- |
| family | string | measurement family: links, hbm, kvcopy, overlap, compute, host, ssd |
| case | string | what was timed, e.g. ``h2d/pinned/alone``, ``layer/decode`` |
| size_bytes | int64 | bytes moved by one call (0 for pure compute) |
| flops | float64 | floating-point operations of one call (0 for copies) |
| batch | int64 | sequences in the call (compute), blocks (kvcopy), threads (ssd); else 0 |
| tokens | int64 | tokens per sequence (prefill) or per block (kvcopy); else 0 |
| context | int64 | KV context length per sequence (decode); else 0 |
| repeat | int32 | index of the timed call (warm-up calls are not kept) |
| time_s | float64 | seconds of that call |

The summary (:meth:`SampleLog.summary`) groups by every column but ``repeat``/``time_s`` and adds
``median_s``, ``p10_s``, ``p90_s``, ``n``, ``gbps`` (size_bytes / median / 1e9) and ``tflops``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from kvplan.atomic import write_parquet_atomic
from kvplan.calibrate.timing import Spread, spread

RAW_SCHEMA = pa.schema(
    [
        ("family", pa.string()),
        ("case", pa.string()),
        ("size_bytes", pa.int64()),
        ("flops", pa.float64()),
        ("batch", pa.int64()),
        ("tokens", pa.int64()),
        ("context", pa.int64()),
        ("repeat", pa.int32()),
        ("time_s", pa.float64()),
    ]
)
KEY_COLUMNS = ["family", "case", "size_bytes", "flops", "batch", "tokens", "context"]


@dataclass(frozen=True)
class Point:
    """One measured configuration (the key of its samples)."""

    family: str
    case: str
    size_bytes: int = 0
    flops: float = 0.0
    batch: int = 0
    tokens: int = 0
    context: int = 0


class SampleLog:
    """Collects samples and notes (skipped sizes, unsupported features) of one run."""

    def __init__(self) -> None:
        self._cols: dict[str, list] = {f.name: [] for f in RAW_SCHEMA}
        self.notes: list[str] = []

    def add(self, point: Point, samples_s: np.ndarray) -> Spread:
        """Append one point's samples; return their median and spread."""
        for key, value in asdict(point).items():
            self._cols[key].extend([value] * len(samples_s))
        self._cols["repeat"].extend(range(len(samples_s)))
        self._cols["time_s"].extend(float(s) for s in samples_s)
        return spread(samples_s)

    def note(self, text: str) -> None:
        """Record one line for the report (e.g. a size skipped for lack of memory)."""
        if text not in self.notes:
            self.notes.append(text)

    def __len__(self) -> int:
        return len(self._cols["time_s"])

    def table(self) -> pa.Table:
        """The raw samples as an Arrow table in :data:`RAW_SCHEMA`."""
        return pa.table(self._cols, schema=RAW_SCHEMA)

    def summary(self) -> pl.DataFrame:
        """Median and spread per point, with bandwidth and throughput columns."""
        return summarize(pl.from_arrow(self.table()))

    def write(self, path: Path, metadata: dict[str, str]) -> None:
        """Write the raw samples to Parquet atomically, with run metadata."""
        write_parquet_atomic(self.table(), path, metadata)


def summarize(raw: pl.DataFrame) -> pl.DataFrame:
    """Group raw samples by point: median_s, p10_s, p90_s, n, gbps, tflops (ordered as measured)."""
    out = (
        raw.group_by(KEY_COLUMNS, maintain_order=True)
        .agg(
            pl.col("time_s").median().alias("median_s"),
            pl.col("time_s").quantile(0.1, "linear").alias("p10_s"),
            pl.col("time_s").quantile(0.9, "linear").alias("p90_s"),
            pl.len().cast(pl.Int64).alias("n"),
        )
    )
    return out.with_columns(
        (pl.col("size_bytes") / pl.col("median_s") / 1e9).alias("gbps"),
        (pl.col("flops") / pl.col("median_s") / 1e12).alias("tflops"),
    )

