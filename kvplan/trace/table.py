"""Assemble reader output into the canonical workload table (sorted, dense ids, validated).

Every reader ends here, so the table's invariants are checked once:
``arrival_s`` non-decreasing (out-of-order traced rows are stably sorted and counted in the
notes, not rejected),
dense ``request_id`` in arrival order, dense ``session_id`` in order of first arrival, ``turn``
counted in arrival order within each session, and
``len(block_hashes) == input_tokens // block_size``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from kvplan.workload import WORKLOAD_SCHEMA, Workload, WorkloadMeta


@dataclass(frozen=True)
class Columns:
    """Per-request columns in reader order; hashes flat with ``hash_offsets`` (n + 1)."""

    session_key: np.ndarray
    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    hashes: np.ndarray
    hash_offsets: np.ndarray
    tool_wait_s: np.ndarray | None = None


def build_workload(cols: Columns, meta: WorkloadMeta) -> Workload:
    """Sort by arrival (stable), number requests and sessions densely, attach the metadata."""
    n = len(cols.arrival_s)
    assert np.array_equal(np.diff(cols.hash_offsets), cols.input_tokens // meta.block_size)
    order = np.argsort(cols.arrival_s, kind="stable")
    n_unsorted = int(np.count_nonzero(np.diff(cols.arrival_s) < 0))
    keys = np.asarray(cols.session_key)[order]
    _, first_idx, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(first_idx), dtype=np.int64)
    rank[np.argsort(first_idx, kind="stable")] = np.arange(len(first_idx))
    session = rank[inverse].astype(np.int64)
    hashes = pa.ListArray.from_arrays(
        pa.array(cols.hash_offsets.astype(np.int32)), pa.array(cols.hashes, type=pa.uint64()))
    wait = (pa.nulls(n, pa.float64()) if cols.tool_wait_s is None
            else pa.array(cols.tool_wait_s, type=pa.float64(), from_pandas=True))
    take = (lambda a: a) if n_unsorted == 0 else (lambda a: a.take(pa.array(order)))
    table = pa.table({
        "request_id": pa.array(np.arange(n, dtype=np.int64)),
        "session_id": pa.array(session),
        "turn": pa.array(turns_of(session)),
        "arrival_s": pa.array(np.asarray(cols.arrival_s, dtype=np.float64)[order]),
        "input_tokens": pa.array(np.asarray(cols.input_tokens, dtype=np.int32)[order]),
        "output_tokens": pa.array(np.asarray(cols.output_tokens, dtype=np.int32)[order]),
        "block_hashes": take(hashes),
        "tool_wait_s": take(wait),
    }, schema=WORKLOAD_SCHEMA)
    if n_unsorted and meta.arrival_process is None:
        note = f"{n_unsorted} out-of-order arrival(s) sorted (stable)"
        meta = replace(meta, notes="; ".join(x for x in (meta.notes, note) if x))
    return Workload(table=table, meta=meta)


def turns_of(session: np.ndarray) -> np.ndarray:
    """0-based position of each row within its session (rows in arrival order).

    Example: sessions [0, 1, 0, 0, 1] -> turns [0, 0, 1, 2, 1].
    """
    by_session = np.argsort(session, kind="stable")
    sorted_ids = session[by_session]
    group_start = np.r_[0, np.flatnonzero(np.diff(sorted_ids)) + 1]
    sizes = np.diff(np.r_[group_start, len(session)])
    turns = np.empty(len(session), dtype=np.int32)
    turns[by_session] = np.arange(len(session)) - np.repeat(group_start, sizes)
    return turns


def content_free_columns(arrival_s: np.ndarray, input_tokens: np.ndarray,
                         output_tokens: np.ndarray, block_size: int) -> Columns:
    """Columns for a lengths-only trace: one session per request, no block shared."""
    from kvplan.trace.hashing import unique_block_hashes

    hashes, offsets = unique_block_hashes(np.asarray(input_tokens) // block_size)
    return Columns(np.arange(len(arrival_s)), arrival_s, input_tokens, output_tokens, hashes,
                   offsets)
