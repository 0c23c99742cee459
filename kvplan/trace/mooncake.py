"""Mooncake JSONL traces (and Dynamo's agentic_mooncake variant).

Plain files are read by the byte-level scanner of :mod:`kvplan.trace.mooncake_scan`; any
other shape, and any file with an error to report by line, column-wise with polars.

One JSON object per line: ``timestamp`` (ms), ``input_length``, ``output_length`` and
``hash_ids``, one id per 512-token block of the prompt, the last one for the partial tail
block (``len(hash_ids) == ceil(input_length / 512)``; ``floor`` is also accepted). Optional:
``session_id`` (turns of one conversation or agent run) and ``tool_wait_ms`` (Dynamo's
agentic_mooncake rows; its ``wait_for``, ``delay`` and ``branches`` are kept only through
``timestamp``, which already places each request after its dependencies).

The ids are chained (:mod:`kvplan.trace.hashing`), the partial-tail id is dropped, and the
table keeps the trace's block size of 512 unless a coarser multiple, or a finer divisor
(derived sub-block hashes, :func:`kvplan.trace.hashing.refine`), is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from kvplan.errors import InputError
from kvplan.trace.hashing import block_positions, chain_units, reblock_hashes
from kvplan.trace.inputs import check_file, raise_first_bad_line
from kvplan.trace.mooncake_scan import scan_mooncake
from kvplan.trace.table import Columns, StagedWorkload, stage
from kvplan.workload import Workload, WorkloadMeta

MOONCAKE_BLOCK_SIZE = 512
REQUIRED = {"timestamp": (int, float), "input_length": int, "output_length": int,
            "hash_ids": list}


def read_mooncake(path: Path, *, block_size: int | None = None) -> Workload:
    """Read a Mooncake JSONL trace; ``block_size`` a multiple of 512 merges blocks, a divisor
    of 512 splits them."""
    return stage_mooncake(path, block_size=block_size).workload()


def stage_mooncake(path: Path, *, block_size: int | None = None) -> StagedWorkload:
    """:func:`read_mooncake`, with the block hashes not yet laid out."""
    path = check_file(path)
    rows = _scan_rows(path) or _read_rows(path)
    hashes, offsets = chain_units(rows.ids, rows.id_offsets, out=rows.ids), rows.id_offsets
    target = block_size or MOONCAKE_BLOCK_SIZE
    if target != MOONCAKE_BLOCK_SIZE:
        hashes, offsets = reblock_hashes(hashes, offsets, rows.input_length,
                                         MOONCAKE_BLOCK_SIZE, target)
    ts = rows.timestamp_ms
    cols = Columns(
        session_key=rows.session_key,
        arrival_s=(ts - ts.min()) / 1000.0,
        input_tokens=rows.input_length,
        output_tokens=rows.output_length,
        hashes=hashes,
        hash_offsets=offsets,
        tool_wait_s=None if rows.tool_wait_ms is None else rows.tool_wait_ms / 1000.0,
    )
    meta = WorkloadMeta(
        source_format="mooncake", source_file=path.name, block_size=target, tokenizer="none",
        notes="hash_ids chained; partial-tail block id dropped"
              + (f"; merged {target // MOONCAKE_BLOCK_SIZE} blocks of 512 per block"
                 if target > MOONCAKE_BLOCK_SIZE else "")
              + (f"; each 512-token block split into {MOONCAKE_BLOCK_SIZE // target} derived "
                 "sub-blocks" if target < MOONCAKE_BLOCK_SIZE else ""),
        extra={"source_block_size": str(MOONCAKE_BLOCK_SIZE)},
    )
    return stage(cols, meta)


@dataclass(frozen=True)
class _Rows:
    """A Mooncake trace column-wise, in file order; the ids of each line's full blocks flat,
    with offsets (n + 1)."""

    timestamp_ms: np.ndarray
    input_length: np.ndarray
    output_length: np.ndarray
    ids: np.ndarray
    id_offsets: np.ndarray
    session_key: np.ndarray | None
    tool_wait_ms: np.ndarray | None = None


def _scan_rows(path: Path) -> _Rows | None:
    """The fast path (:mod:`kvplan.trace.mooncake_scan`); None if the file needs the general
    reader, for its shape or for an error to report by line."""
    scanned = scan_mooncake(path, MOONCAKE_BLOCK_SIZE)
    if scanned is None:
        return None
    fields, ids, offsets = scanned
    return _Rows(timestamp_ms=fields[:, 0].astype(np.float64), input_length=fields[:, 1],
                 output_length=fields[:, 2], ids=ids, id_offsets=offsets, session_key=None)


def _read_rows(path: Path) -> _Rows:
    """The general path: polars reads any variant; bad lines are reported by number."""
    df = _read_frame(path)
    _validate(df, path)
    ids, offsets = _full_block_ids(df)
    return _Rows(
        timestamp_ms=df["timestamp"].cast(pl.Float64).to_numpy(),
        input_length=df["input_length"].to_numpy(),
        output_length=df["output_length"].to_numpy(),
        ids=ids,
        id_offsets=offsets,
        session_key=_session_keys(df),
        tool_wait_ms=(df["tool_wait_ms"].cast(pl.Float64).to_numpy()
                      if "tool_wait_ms" in df.columns else None),
    )


def _read_frame(path: Path) -> pl.DataFrame:
    try:
        df = pl.read_ndjson(path, infer_schema_length=1000)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise_first_bad_line(path, REQUIRED)
        raise InputError(path, f"not a readable JSONL trace ({str(exc).splitlines()[0]})"
                         ) from None
    if df.height == 0:
        raise InputError(path, "no records, expected Mooncake JSONL lines")
    return df


def _validate(df: pl.DataFrame, path: Path) -> None:
    for name in REQUIRED:
        if name not in df.columns:
            raise InputError(path, "missing in every record (Mooncake JSONL needs timestamp, "
                             "input_length, output_length, hash_ids)", line=1, field=name)
    ints = ("input_length", "output_length")
    ok_types = (all(df[c].dtype.is_integer() for c in ints) and df["timestamp"].dtype.is_numeric()
                and df["hash_ids"].dtype in (pl.List(pl.Int64), pl.List(pl.UInt64),
                                             pl.List(pl.Null)))
    if not ok_types or sum(df[c].null_count() for c in REQUIRED):
        raise_first_bad_line(path, REQUIRED)
        raise InputError(path, "mistyped field in some record", field="hash_ids")
    for name in ints:
        _fail_first(df, path, pl.col(name) < 0, name, "expected a length >= 0")
    n = df["hash_ids"].list.len()
    full, ceil = df["input_length"] // 512, (df["input_length"] + 511) // 512
    bad = (n != full) & (n != ceil)
    _fail_first(df, path, bad, "hash_ids",
                "input_length disagrees with len(hash_ids): expected ceil(input_length / 512) "
                "ids of 512-token blocks")


def _fail_first(df: pl.DataFrame, path: Path, mask, name: str, problem: str) -> None:
    hits = df.select(mask.alias("m")).to_series() if isinstance(mask, pl.Expr) else mask
    if hits.any():
        row = int(hits.arg_true()[0])
        value = df.row(row, named=True)[name]
        raise InputError(path, f"{problem}, got {str(value)[:40]}", line=row + 1, field=name)


def _full_block_ids(df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Flat ids of each request's full 512-token blocks and their offsets (n + 1)."""
    arr = df["hash_ids"].to_arrow()
    values = arr.values.to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
    starts = np.asarray(arr.offsets)[:-1].astype(np.int64)
    n_full = df["input_length"].to_numpy() // MOONCAKE_BLOCK_SIZE
    offsets = np.zeros(len(n_full) + 1, dtype=np.int64)
    np.cumsum(n_full, out=offsets[1:])
    return values[block_positions(starts, n_full, 1)] if len(values) else values, offsets


def _session_keys(df: pl.DataFrame) -> np.ndarray | None:
    """Dense session keys: the trace's session_id, else None (one session per request)."""
    if "session_id" not in df.columns:
        return None
    own = pl.Series(np.arange(df.height)).cast(pl.String)
    keys = df["session_id"].cast(pl.String).fill_null("r" + own)
    return keys.rank("dense").to_numpy().astype(np.int64)
