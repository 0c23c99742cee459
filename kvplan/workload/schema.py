"""Canonical workload table (docs/workload.md) and its Parquet round trip.

One row per request. ``block_hashes`` holds chained content hashes of the prompt's *full*
blocks, so two requests share block ``i`` only if they share every block before it::

    prompt tokens   |<- block 0 ->|<- block 1 ->|<- block 2 ->|<- tail ->|
    block_hashes    [ h0,           h1,           h2          ]   (tail not hashed)
    h_i = H(h_{i-1}, tokens of block i)

``len(block_hashes) == input_tokens // block_size`` always holds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kvplan import __version__
from kvplan.atomic import write_parquet_atomic
from kvplan.errors import InputError

SCHEMA_VERSION = 1
META_KEY = b"kvplan.workload"

WORKLOAD_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.int64(), nullable=False),
        pa.field("session_id", pa.int64(), nullable=False),
        pa.field("turn", pa.int32(), nullable=False),
        pa.field("arrival_s", pa.float64(), nullable=False),
        pa.field("input_tokens", pa.int32(), nullable=False),
        pa.field("output_tokens", pa.int32(), nullable=False),
        pa.field("block_hashes", pa.list_(pa.uint64()), nullable=False),
        pa.field("tool_wait_s", pa.float64(), nullable=True),
    ]
)


@dataclass(frozen=True)
class WorkloadMeta:
    """Table-level provenance, stored as JSON under the ``kvplan.workload`` Parquet key."""

    source_format: str
    """Reader that produced the table: sharegpt, agent, mooncake, azure, burstgpt, synth."""
    source_file: str
    """Input file name (or the synth command line)."""
    block_size: int
    """Tokens per KV block that ``block_hashes`` were computed with."""
    tokenizer: str
    """``estimator`` or the path of the Hugging Face tokenizer.json used; ``none`` if no text."""
    has_content: bool = True
    """False when the source carries lengths only (Azure, BurstGPT): no prefix sharing."""
    arrival_process: str | None = None
    """How arrivals were synthesized (e.g. ``poisson(rate=2.0/s), seed=0``), None if traced."""
    notes: str = ""
    """Free text: choices made while reading (sorting, merging of blocks...)."""
    schema_version: int = SCHEMA_VERSION
    kvplan_version: str = __version__
    extra: dict[str, str] = field(default_factory=dict)
    """Reader-specific details (e.g. the source block size before re-blocking)."""


@dataclass(frozen=True)
class Workload:
    """A canonical workload: the Arrow table plus its metadata."""

    table: pa.Table
    meta: WorkloadMeta

    @property
    def num_requests(self) -> int:
        return self.table.num_rows

    @property
    def block_size(self) -> int:
        return self.meta.block_size


def write_workload(workload: Workload, path: str | Path) -> None:
    """Write a workload to Parquet atomically, with the metadata JSON in the schema."""
    table = workload.table.cast(WORKLOAD_SCHEMA)
    write_parquet_atomic(table, path, {META_KEY.decode(): json.dumps(asdict(workload.meta))})


def read_workload(path: str | Path) -> Workload:
    """Read a canonical Parquet workload; a wrong schema or version is an InputError."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(path, f"not a readable Parquet file ({exc})") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise InputError(path, "Parquet file has no kvplan workload metadata; convert it with "
                         "'kvplan trace convert' first")
    meta_dict = json.loads(raw)
    if meta_dict.get("schema_version") != SCHEMA_VERSION:
        raise InputError(path, f"workload schema version {meta_dict.get('schema_version')}, "
                         f"expected {SCHEMA_VERSION}", field="schema_version")
    missing = [n for n in WORKLOAD_SCHEMA.names if n not in table.schema.names]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}", field=missing[0])
    table = table.select(WORKLOAD_SCHEMA.names).cast(WORKLOAD_SCHEMA)
    return Workload(table=table, meta=WorkloadMeta(**meta_dict))
