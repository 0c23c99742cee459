"""``trace convert``: any trace -> canonical Parquet, streamed chunk by chunk.

The block hashes dominate the output (an Azure request of 4,000 tokens at block size 16 has
250 of them, a million requests 2 GB), so they are never held whole: each chunk of
:meth:`StagedWorkload.chunk_bounds` is laid out, written as one row group and dropped, into a
temporary file renamed onto the target at the end (:func:`kvplan.atomic.atomic_path`).

Parquet settings for ``block_hashes``, measured on the benchmark inputs (bench/bench_trace.py):
no dictionary (almost every hash is new, so dictionary pages only cost time before falling
back to plain), no statistics (min/max of hashes mean nothing), and

- content hashes (random 64-bit values): PLAIN, uncompressed; zstd and lz4 cannot shrink
  random bits and only cost time (15M Mooncake hashes: 0.6 s plain, 0.95 s lz4, 1.0 s delta,
  1.0 s dictionary). The price: repeated prefix hashes are stored again, so a trace with much
  reuse is larger than with dictionary + zstd (the bundled Mooncake sample: 1.0 MB, not 0.5);
- lengths-only traces (:func:`kvplan.trace.hashing.content_free_hashes`, consecutive
  numbers): DELTA_BINARY_PACKED, ~0 bits per hash: 250M Azure hashes in 4.8 s and 28 MB,
  against 9.4 s and 2 GB plain, 11.8 s and 277 MB plain + zstd.

The other columns: no dictionary, lz4 (1M rows in 0.1 s; zstd with dictionaries took 0.3 s).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq

from kvplan.atomic import atomic_path
from kvplan.trace.options import ReadOptions
from kvplan.trace.read import stage_trace
from kvplan.trace.table import StagedWorkload
from kvplan.workload.schema import META_KEY, schema_for

HASHES_LEAF = "block_hashes.list.element"


def convert_trace(path: Path | None, out: Path, fmt: str = "auto",
                  opts: ReadOptions | None = None) -> StagedWorkload:
    """Read ``path`` (any supported format) and write its canonical Parquet to ``out``."""
    staged = stage_trace(path, fmt, opts)
    write_staged(staged, out)
    return staged


def write_staged(staged: StagedWorkload, out: Path) -> None:
    """Write a staged workload as canonical Parquet, one row group per hash chunk, atomically."""
    schema = schema_for(staged.table.column_names).with_metadata(
        {META_KEY: json.dumps(asdict(staged.meta))})
    others = [f.name for f in schema if f.name != "block_hashes"]
    encoding = "PLAIN" if staged.meta.has_content else "DELTA_BINARY_PACKED"
    with atomic_path(out) as tmp, pq.ParquetWriter(
            tmp, schema, compression={**dict.fromkeys(others, "lz4"), HASHES_LEAF: "none"},
            use_dictionary=False, write_statistics=others,
            column_encoding={HASHES_LEAF: encoding}) as writer:
        for start, stop in staged.chunk_bounds() or [(0, 0)]:
            chunk = staged.table.slice(start, stop - start).add_column(
                schema.get_field_index("block_hashes"), schema.field("block_hashes"),
                staged.hash_chunk(start, stop))
            writer.write_table(chunk.cast(schema), row_group_size=max(stop - start, 1))
