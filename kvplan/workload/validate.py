"""What makes a workload table valid, checked once so the simulator can trust its input.

Every reader's output (:func:`kvplan.trace.read.stage_trace`) and every Parquet workload
(:func:`kvplan.workload.schema.read_workload`) pass :func:`validate_workload`. Readers check
the same limits earlier, where they can name the line of the file; this is the last word.

Limits (docs/workload.md, "Limits"):

- ``MAX_TOKENS`` = 2**24 = 16,777,216 tokens per request, for the prompt and for the output:
  above every model's context window (the longest, 10 M tokens), far inside int32, and it
  bounds what one row can cost: 2**24 / 16 tokens per block = 1 M block hashes = 8 MiB. So a
  57-byte file declaring 2**31 tokens is refused, not converted into 134 M hashes (3.4 GB).
- ``MAX_ARRIVAL_S`` = 10**9 s (31.7 years) from the first arrival: float64 still resolves
  0.12 us there, and a larger span is a unit or parsing mistake.
- ``MAX_BLOCK_SIZE`` = ``MAX_TOKENS``: a block longer than any prompt means nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from kvplan.errors import InputError

if TYPE_CHECKING:
    from kvplan.workload.schema import WorkloadMeta

MAX_TOKENS = 1 << 24
"""Most input (and output) tokens one request may declare."""
MAX_ARRIVAL_S = 1e9
"""Longest span of arrival times, seconds."""
MAX_BLOCK_SIZE = MAX_TOKENS
"""Largest block size in tokens."""


def validate_workload(table: pa.Table, meta: WorkloadMeta, path: str | Path | None) -> None:
    """Raise an InputError (naming ``path``, the row and the column) unless the table holds
    at least one request, every number is in range and arrivals are sorted.

    Checked: ``block_size`` in 1..MAX_BLOCK_SIZE; ``request_id`` unique; ``session_id`` and
    ``turn`` >= 0; ``arrival_s`` finite, in 0..MAX_ARRIVAL_S and non-decreasing;
    ``input_tokens`` and ``output_tokens`` in 0..MAX_TOKENS; ``tool_wait_s`` null or finite
    and >= 0; the optional ``delay_s`` null or finite and >= 0 and ``wait_for`` ids of
    earlier rows; and when the table has ``block_hashes``, no nulls and exactly
    ``input_tokens // block_size`` hashes per row.
    """
    bs = meta.block_size
    if isinstance(bs, bool) or not isinstance(bs, int) or not 1 <= bs <= MAX_BLOCK_SIZE:
        raise InputError(path, f"expected an integer in 1..{MAX_BLOCK_SIZE:,}, got {bs!r:.40}",
                         field="block_size")
    if table.num_rows == 0:
        raise InputError(path, "no requests, expected at least one row")
    for name in table.column_names:
        if name not in _NULLABLE and table.column(name).null_count:
            _fail(path, table, name, table.column(name).is_null().to_numpy(
                zero_copy_only=False), "missing value")
    col = {n: table.column(n).to_numpy() for n in ("request_id", "session_id", "turn",
                                                   "arrival_s", "input_tokens", "output_tokens")}
    ids = col["request_id"]
    dup = np.zeros(len(ids), dtype=bool)
    order = np.argsort(ids, kind="stable")
    dup[order[1:]] = ids[order[1:]] == ids[order[:-1]]
    _check(path, table, "request_id", dup, "duplicate request id")
    for name in ("request_id", "session_id", "turn"):
        _check(path, table, name, col[name] < 0, "expected a value >= 0")
    arrival = col["arrival_s"]
    _check(path, table, "arrival_s", ~np.isfinite(arrival), "expected a finite number")
    _check(path, table, "arrival_s", (arrival < 0) | (arrival > MAX_ARRIVAL_S),
           f"expected seconds in 0..{MAX_ARRIVAL_S:.0e}")
    _check(path, table, "arrival_s", np.r_[False, np.diff(arrival) < 0],
           "arrival before the previous row's (arrival_s must be non-decreasing)")
    for name in ("input_tokens", "output_tokens"):
        x = col[name]
        _check(path, table, name, (x < 0) | (x > MAX_TOKENS),
               f"expected tokens in 0..{MAX_TOKENS:,} (the per-request limit)")
    wait = table.column("tool_wait_s").to_numpy(zero_copy_only=False)
    _check(path, table, "tool_wait_s", ~np.isnan(wait) & ~((wait >= 0) & (wait <= MAX_ARRIVAL_S)),
           "expected null or seconds >= 0")
    if "delay_s" in table.column_names:
        delay = table.column("delay_s").to_numpy(zero_copy_only=False).astype(np.float64)
        _check(path, table, "delay_s",
               ~np.isnan(delay) & ~((delay >= 0) & (delay <= MAX_ARRIVAL_S)),
               "expected null or seconds >= 0")
    if "wait_for" in table.column_names:
        _check_wait_for(path, table, ids)
    if "block_hashes" in table.column_names:
        _check_hashes(path, table, col["input_tokens"] // bs)


_NULLABLE = ("tool_wait_s", "wait_for", "delay_s")


def _check_wait_for(path, table: pa.Table, ids: np.ndarray) -> None:
    """Every id in ``wait_for`` names a request in an earlier row (so the dependencies form
    a graph without cycles)."""
    col = table.column("wait_for").combine_chunks()
    offs = np.asarray(col.offsets, dtype=np.int64)
    owner = np.repeat(np.arange(table.num_rows), np.diff(offs))
    values = col.values.slice(offs[0], offs[-1] - offs[0])
    missing = values.is_null().to_numpy(zero_copy_only=False)
    _check_rows(path, table, "wait_for", owner[missing], "missing id in the list")
    flat = values.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(ids, kind="stable")
    pos = np.minimum(np.searchsorted(ids[order], flat), len(ids) - 1)
    earlier = (ids[order][pos] == flat) & (order[pos] < owner)
    _check_rows(path, table, "wait_for", owner[~earlier],
                "expected request ids of earlier rows")


def _check_rows(path, table: pa.Table, name: str, rows: np.ndarray, problem: str) -> None:
    bad = np.zeros(table.num_rows, dtype=bool)
    bad[rows] = True
    _check(path, table, name, bad, problem)


def _check_hashes(path, table: pa.Table, expected: np.ndarray) -> None:
    hashes = table.column("block_hashes").combine_chunks()
    if hashes.values.null_count:
        inner = hashes.values.is_null().to_numpy(zero_copy_only=False)
        row = np.searchsorted(np.asarray(hashes.offsets), np.argmax(inner), side="right") - 1
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[row] = True
        _fail(path, table, "block_hashes", mask, "missing hash in the list")
    counts = np.diff(np.asarray(hashes.offsets))
    _check(path, table, "block_hashes", counts != expected,
           "expected input_tokens // block_size hashes")


def _check(path, table: pa.Table, name: str, bad: np.ndarray, problem: str) -> None:
    if bad.any():
        _fail(path, table, name, bad, problem)


def _fail(path, table: pa.Table, name: str, bad: np.ndarray, problem: str) -> None:
    row = int(np.argmax(bad))
    value = table.column(name)[row].as_py()
    shown = f"{len(value)} hashes" if name == "block_hashes" else repr(value)[:40]
    raise InputError(path, f"row {row}: {problem}, got {shown}", field=name)
