"""Mooncake JSONL traces (and Dynamo's agentic_mooncake variant).

Plain files are read by the byte-level scanner of :mod:`kvplan.trace.mooncake_scan`; any
other shape, and any file with an error to report by line, column-wise with polars.

One JSON object per line: ``timestamp`` (ms), ``input_length``, ``output_length`` and
``hash_ids``, one id per 512-token block of the prompt, the last one for the partial tail
block (``len(hash_ids) == ceil(input_length / 512)``; ``floor`` is also accepted). Optional:
``session_id`` (turns of one conversation or agent run), ``tool_wait_ms`` and Dynamo's
agentic_mooncake graph, ``request_id``, ``wait_for`` and ``delay`` (kept as the ``wait_for``
and ``delay_s`` columns, :mod:`kvplan.trace.dynamo`; ``branches`` is implied by them).

The ids are chained (:mod:`kvplan.trace.hashing`), the partial-tail id is dropped, and the
table keeps the trace's block size of 512 unless a coarser multiple, or a finer divisor
(derived sub-block hashes, :func:`kvplan.trace.hashing.refine`), is asked for.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import polars as pl

from kvplan.errors import InputError
from kvplan.trace.dynamo import GraphRecords
from kvplan.trace.hashing import block_positions, chain_units, reblock_hashes
from kvplan.trace.inputs import check_file, check_span, echo, json_lines
from kvplan.trace.mooncake_scan import scan_mooncake
from kvplan.trace.table import Columns, Dependencies, StagedWorkload, stage
from kvplan.workload import Workload, WorkloadMeta
from kvplan.workload.validate import MAX_ARRIVAL_S, MAX_TOKENS

MOONCAKE_BLOCK_SIZE = 512
REQUIRED = ("timestamp", "input_length", "output_length", "hash_ids")


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
        wait_for=rows.wait_for,
        delay_s=rows.delay_s,
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
    wait_for: Dependencies | None = None
    delay_s: np.ndarray | None = None


def _scan_rows(path: Path) -> _Rows | None:
    """The fast path (:mod:`kvplan.trace.mooncake_scan`); None if the file needs the general
    reader, for its shape or for an error to report by line."""
    scanned = scan_mooncake(path, MOONCAKE_BLOCK_SIZE)
    if scanned is None:
        return None
    fields, ids, offsets = scanned
    rows = _Rows(timestamp_ms=fields[:, 0].astype(np.float64), input_length=fields[:, 1],
                 output_length=fields[:, 2], ids=ids, id_offsets=offsets, session_key=None)
    return rows if _in_range(rows) else None


def _in_range(rows: _Rows) -> bool:
    """Lengths within the per-request limit, times finite and within the span limit."""
    lengths = np.concatenate([rows.input_length, rows.output_length])
    ts = rows.timestamp_ms
    wait = rows.tool_wait_ms
    return bool(((lengths >= 0) & (lengths <= MAX_TOKENS)).all() and np.isfinite(ts).all()
                and ts.max() - ts.min() <= MAX_ARRIVAL_S * 1000
                and (wait is None or not ((wait < 0) | np.isinf(wait)).any()))


def _read_rows(path: Path) -> _Rows:
    """The general path: polars reads any variant column-wise; a file it cannot read, or
    whose values fail a check, is read line by line, which names the first bad line."""
    return _frame_rows(path) or _line_rows(path)


_ID_LISTS = (pl.List(pl.Int64), pl.List(pl.UInt64), pl.List(pl.Null))


def _frame_rows(path: Path) -> _Rows | None:
    try:
        df = pl.read_ndjson(path, infer_schema_length=1000)
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return None
    if df.height == 0 or not set(REQUIRED) <= set(df.columns) or \
            {"wait_for", "delay"} & set(df.columns):  # graphs: line by line
        return None
    if not _frame_types_ok(df) or not all(df[c].is_between(0, MAX_TOKENS).all()
                                          for c in ("input_length", "output_length")):
        return None
    hashes = df["hash_ids"]
    n = hashes.list.len()
    full, ceil = df["input_length"] // 512, (df["input_length"] + 511) // 512
    negative = hashes.dtype != pl.List(pl.Null) and (hashes.list.min() < 0).any()
    if ((n != full) & (n != ceil)).any() or negative or \
            (hashes.list.drop_nulls().list.len() != n).any():
        return None
    ids, offsets = _full_block_ids(df)
    rows = _Rows(
        timestamp_ms=df["timestamp"].cast(pl.Float64).to_numpy(),
        input_length=df["input_length"].to_numpy(),
        output_length=df["output_length"].to_numpy(),
        ids=ids,
        id_offsets=offsets,
        session_key=_session_keys(df),
        tool_wait_ms=(df["tool_wait_ms"].cast(pl.Float64).to_numpy()
                      if "tool_wait_ms" in df.columns else None),
    )
    return rows if _in_range(rows) else None


def _frame_types_ok(df: pl.DataFrame) -> bool:
    """Columns of the types the frame path handles, required ones without nulls."""
    def dtype(name: str) -> pl.DataType:
        return df[name].dtype if name in df.columns else pl.Null

    return (dtype("input_length") == pl.Int64 and dtype("output_length") == pl.Int64
            and dtype("timestamp") in (pl.Int64, pl.Float64) and dtype("hash_ids") in _ID_LISTS
            and dtype("session_id") in (pl.Int64, pl.Null)  # polars writes a mix as String
            and dtype("tool_wait_ms") in (pl.Int64, pl.Float64, pl.Null)
            and not sum(df[c].null_count() for c in REQUIRED))


def _line_rows(path: Path) -> _Rows:
    """Read line by line with :func:`_check_record`; raises at the first bad line."""
    ts, inp, out, counts, sessions, waits, lines = [], [], [], [], [], [], []
    ids = array("Q")
    graph = GraphRecords(path)
    for lineno, rec in json_lines(path):
        _check_record(path, lineno, rec)
        graph.add(lineno, rec)
        ts.append(float(rec["timestamp"]))
        inp.append(rec["input_length"])
        out.append(rec["output_length"])
        full = rec["input_length"] // MOONCAKE_BLOCK_SIZE
        ids.extend(rec["hash_ids"][:full])
        counts.append(full)
        sid = rec.get("session_id")
        sessions.append(f"\x00{len(lines)}" if sid is None else str(sid))
        wait = rec.get("tool_wait_ms")
        waits.append(math.nan if wait is None else float(wait))
        lines.append(lineno)
    if not lines:
        raise InputError(path, "no records, expected Mooncake JSONL lines")
    check_span(path, np.array(ts) / 1000, "timestamp", lambda i: (lines[i], ""))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    deps, delay = graph.resolve(np.array(ts)) if graph.present else (None, None)
    return _Rows(timestamp_ms=np.array(ts), input_length=np.array(inp, dtype=np.int64),
                 output_length=np.array(out, dtype=np.int64),
                 ids=np.frombuffer(ids, dtype=np.uint64).copy(), id_offsets=offsets,
                 session_key=np.unique(sessions, return_inverse=True)[1].astype(np.int64)
                 if any(k[:1] != "\x00" for k in sessions) else None,
                 tool_wait_ms=np.array(waits) if any(w == w for w in waits) else None,
                 wait_for=deps, delay_s=delay)


def _check_record(path: Path, line: int, rec: dict) -> None:
    """One Mooncake record's fields: present, typed and in range, else an InputError."""
    def fail(name: str, problem: str) -> NoReturn:
        raise InputError(path, f"{problem}, got {echo(rec.get(name))}", line=line, field=name)

    for name in REQUIRED:
        if rec.get(name) is None:
            raise InputError(path, "missing value", line=line, field=name)
    if not _is_number(rec["timestamp"]) or not math.isfinite(rec["timestamp"]):
        fail("timestamp", "expected a finite number (milliseconds)")
    for name in ("input_length", "output_length"):
        if not _is_int(rec[name]):
            fail(name, "expected an integer")
        if not 0 <= rec[name] <= MAX_TOKENS:
            fail(name, f"expected a length in 0..{MAX_TOKENS:,} (the per-request limit)")
    ids = rec["hash_ids"]
    if not isinstance(ids, list) or not all(_is_int(h) and 0 <= h < 2**64 for h in ids):
        fail("hash_ids", "expected a list of integers in 0..2**64-1")
    length = rec["input_length"]
    if len(ids) not in (length // 512, -(-length // 512)):
        fail("hash_ids", f"input_length {length} disagrees with len(hash_ids) {len(ids)}: "
             "expected ceil(input_length / 512) ids of 512-token blocks")
    sid = rec.get("session_id")
    if sid is not None and not isinstance(sid, str) and not _is_int(sid):
        fail("session_id", "expected a string or an integer")
    wait = rec.get("tool_wait_ms")
    if wait is not None and (not _is_number(wait) or not 0 <= wait < math.inf):
        fail("tool_wait_ms", "expected null or a number of milliseconds >= 0")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


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
    """Dense session keys: the trace's session_id (as text), else None (one session per
    request); a row without one is a session of its own."""
    if "session_id" not in df.columns or df["session_id"].null_count() == df.height:
        return None
    own = pl.Series(np.arange(df.height)).cast(pl.String)
    keys = df["session_id"].cast(pl.String).fill_null("\x00" + own)
    return keys.rank("dense").to_numpy().astype(np.int64)
