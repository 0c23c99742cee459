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
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kvplan import __version__
from kvplan.atomic import write_parquet_atomic
from kvplan.errors import InputError
from kvplan.memory import return_freed
from kvplan.workload.validate import block_hash_lists, validate_workload

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
OPTIONAL_FIELDS = (
    pa.field("wait_for", pa.list_(pa.int64()), nullable=True),
    pa.field("delay_s", pa.float64(), nullable=True),
)
"""Columns a workload may add after the canonical ones (docs/workload.md): ``wait_for``, the
request ids a request waits for (null: the previous turn of its session), and ``delay_s``,
its recorded non-tool wait after them (Dynamo agentic graphs)."""


def schema_for(names: list[str]) -> pa.Schema:
    """The canonical schema plus the optional columns among ``names``, in that order."""
    return pa.schema([*WORKLOAD_SCHEMA, *(f for f in OPTIONAL_FIELDS if f.name in names)])


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


ROWS_PER_CHUNK = 65_536
"""Most requests per Parquet row group of a written workload (and per chunk of ``trace
convert``, kvplan.trace.table)."""
HASHES_PER_CHUNK = 1 << 23
"""Block hashes (64 MiB) per row group / chunk, about: a reader decodes one row group at a
time, so its buffers stay bounded on a long trace."""


def write_workload(workload: Workload, path: str | Path) -> None:
    """Write a workload to Parquet atomically, with the metadata JSON in the schema, in row
    groups of equal rows holding about HASHES_PER_CHUNK hashes. Example: 74,737 agent
    requests of 647 blocks on average -> 12,957 rows per group, 6 groups; the bundled
    Mooncake trace is one group."""
    table = workload.table.cast(schema_for(workload.table.column_names))
    offsets = np.asarray(block_hash_lists(table).offsets)
    blocks = max(int(offsets[-1] - offsets[0]), 1)
    rows = max(1, min(ROWS_PER_CHUNK, HASHES_PER_CHUNK * table.num_rows // blocks))
    write_parquet_atomic(table, path, {META_KEY.decode(): json.dumps(asdict(workload.meta))},
                         row_group_rows=rows)


def read_workload(path: str | Path) -> Workload:
    """Read a canonical Parquet workload, validated (:mod:`kvplan.workload.validate`).

    A file Arrow cannot read, metadata that is not the ``kvplan.workload`` JSON object, a
    column that cannot be cast to its canonical type without loss, or a value out of range is
    a one-line InputError naming the file and the field.
    """
    path = Path(path)
    try:
        table = _read_by_row_group(path)
        names = table.schema.names
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: names not UTF-8
        raise InputError(path, f"not a readable Parquet file ({first_line(exc)})") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise InputError(path, "Parquet file has no kvplan workload metadata; convert it with "
                         "'kvplan trace convert' first")
    meta = meta_from_json(raw, path)
    missing = [n for n in WORKLOAD_SCHEMA.names if n not in names]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}", field=missing[0])
    schema = schema_for(names)
    table = pa.table([_cast(table.column(f.name), f, path) for f in schema], schema=schema)
    validate_workload(table, meta, path)
    return_freed()  # the decoded pages: 2 x the table, kept
    return Workload(table=table, meta=meta)


def _read_by_row_group(path: Path) -> pa.Table:
    """The file's table, one chunk per column, read one row group at a time: only one group's
    decode buffers live at once. A 48 M-block agent trace (372 MiB as a table) peaks at about
    1.1 GiB in 6 groups, 1.4 GiB as one (write_workload's layout before row groups)."""
    source = pq.ParquetFile(path, pre_buffer=False)  # local files: 15 % lower peak
    groups = [source.read_row_group(i) for i in range(source.metadata.num_row_groups)]
    table = pa.concat_tables(groups) if groups else source.schema_arrow.empty_table()
    return table.combine_chunks() if len(groups) > 1 else table


def _cast(column: pa.ChunkedArray, field: pa.Field, path: Path) -> pa.ChunkedArray:
    """``column`` as the field's type; lossy or impossible casts are errors, never wraps."""
    try:
        return column.cast(field.type)
    except (pa.ArrowException, OverflowError) as exc:
        raise InputError(path, f"column of type {column.type} cannot be read as {field.type} "
                         f"({first_line(exc)})", field=field.name) from None


_META_TYPES: dict[str, type | tuple[type, ...]] = {
    f.name: {"str": str, "int": int, "bool": bool, "str | None": (str, type(None)),
             "dict[str, str]": dict}[str(f.type)] for f in fields(WorkloadMeta)}
_META_REQUIRED = {f.name for f in fields(WorkloadMeta)
                  if f.default is MISSING and f.default_factory is MISSING}


def meta_from_json(raw: bytes, path: Path) -> WorkloadMeta:
    """The ``kvplan.workload`` metadata: a JSON object with WorkloadMeta's fields, typed."""
    where = META_KEY.decode()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deeply
        raise InputError(path, "metadata is not UTF-8 JSON", field=where) from None
    if not isinstance(data, dict):
        raise InputError(path, f"metadata: expected a JSON object, got {type(data).__name__}",
                         field=where)
    if data.get("schema_version") != SCHEMA_VERSION:
        raise InputError(path, f"workload schema version {data.get('schema_version')!r:.40}, "
                         f"expected {SCHEMA_VERSION}", field="schema_version")
    for key, value in data.items():
        kind = _META_TYPES.get(key)
        if kind is None:
            raise InputError(path, f"unknown metadata key (expected {', '.join(_META_TYPES)})",
                             field=f"{where}.{str(key)[:40]}")
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool) or (
                isinstance(value, dict) and not all(isinstance(v, str) for v in value.values())):
            raise InputError(path, f"metadata value {json.dumps(value)[:40]} has the wrong type",
                             field=f"{where}.{key}")
    for key in sorted(_META_REQUIRED - set(data)):
        raise InputError(path, "metadata key missing", field=f"{where}.{key}")
    return WorkloadMeta(**data)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters (Arrow's span many)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]
