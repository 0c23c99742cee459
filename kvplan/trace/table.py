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

from kvplan.trace.hashing import block_positions, content_free_hashes
from kvplan.workload import WORKLOAD_SCHEMA, Workload, WorkloadMeta
from kvplan.workload.schema import HASHES_PER_CHUNK, ROWS_PER_CHUNK, schema_for


@dataclass(frozen=True)
class Columns:
    """Per-request columns in reader order; hashes flat with ``hash_offsets`` (n + 1).

    ``hashes`` None means a lengths-only trace: every full block gets a unique hash
    (:func:`kvplan.trace.hashing.content_free_hashes`), generated only when laid out.
    """

    session_key: np.ndarray | None
    """Any key per request, equal within a session; None = one session per request."""
    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    hashes: np.ndarray | None
    hash_offsets: np.ndarray
    tool_wait_s: np.ndarray | None = None
    wait_for: Dependencies | None = None
    """Dynamo agentic graphs: the rows each request waits for (``wait_for`` column)."""
    delay_s: np.ndarray | None = None
    """Recorded non-tool wait after the dependencies, seconds (NaN: none; ``delay_s``)."""


@dataclass(frozen=True)
class Dependencies:
    """Per request, the rows (reader order) it waits for: ``rows[offsets[i]:offsets[i+1]]``;
    where ``given[i]`` is False it has none recorded (its session's previous turn applies)."""

    given: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray

    def column(self, order: np.ndarray) -> pa.ListArray:
        """The ``wait_for`` column of the rows in ``order``, as their new request ids."""
        new_id = np.empty(len(order), dtype=np.int64)
        new_id[order] = np.arange(len(order))
        lengths = np.diff(self.offsets)[order]
        offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = self.rows[block_positions(self.offsets[:-1][order], lengths, 1)]
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                        pa.array(new_id[flat], type=pa.int64()),
                                        mask=pa.array(~self.given[order]))


@dataclass(frozen=True)
class StagedWorkload:
    """A workload sorted and numbered, its ``block_hashes`` laid out chunk by chunk on demand.

    ``table`` holds every canonical column but ``block_hashes``, in final (arrival) order.
    Row ``i``'s hashes are ``hashes[starts[i] : starts[i] + n_blocks[i]]`` (reader order), or
    for a lengths-only trace the unique hashes of its blocks' running numbers
    ``offsets[i] .. offsets[i+1]`` in final order.
    """

    table: pa.Table
    meta: WorkloadMeta
    hashes: np.ndarray | None
    starts: np.ndarray
    offsets: np.ndarray
    in_order: bool
    """True when rows kept reader order, so each chunk's hashes are one contiguous slice."""

    @property
    def num_requests(self) -> int:
        return self.table.num_rows

    @property
    def block_size(self) -> int:
        return self.meta.block_size

    def chunk_bounds(self) -> list[tuple[int, int]]:
        """Row ranges of at most ROWS_PER_CHUNK rows and about HASHES_PER_CHUNK hashes.

        Cuts every ROWS_PER_CHUNK rows and at the first row starting at or past each multiple
        of HASHES_PER_CHUNK hashes; a chunk holds < HASHES_PER_CHUNK + one row's hashes.
        """
        n = self.num_requests
        by_hashes = np.searchsorted(self.offsets[:-1],
                                    np.arange(0, int(self.offsets[-1]), HASHES_PER_CHUNK))
        cuts = np.unique(np.r_[np.arange(0, n, ROWS_PER_CHUNK), by_hashes, n].astype(np.int64))
        return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]

    def hash_chunk(self, start: int, stop: int) -> pa.ListArray:
        """``block_hashes`` of rows ``start:stop`` as one list array (int32 offsets from 0)."""
        first, last = int(self.offsets[start]), int(self.offsets[stop])
        if self.hashes is None:
            values = content_free_hashes(first, last - first)
        elif self.in_order:
            s = int(self.starts[start]) if stop > start else 0
            values = self.hashes[s: s + last - first]
        else:
            values = self.hashes[block_positions(self.starts[start:stop],
                                                 np.diff(self.offsets[start:stop + 1]), 1)]
        return pa.ListArray.from_arrays(pa.array((self.offsets[start:stop + 1] - first)
                                                 .astype(np.int32)),
                                        pa.array(values, type=pa.uint64()))

    def workload(self) -> Workload:
        """The in-memory workload (``block_hashes`` chunked as :meth:`chunk_bounds`)."""
        hashes = pa.chunked_array([self.hash_chunk(a, b) for a, b in self.chunk_bounds()]
                                  or [self.hash_chunk(0, 0)], type=pa.list_(pa.uint64()))
        table = self.table.add_column(WORKLOAD_SCHEMA.get_field_index("block_hashes"),
                                      WORKLOAD_SCHEMA.field("block_hashes"), hashes)
        return Workload(table=table, meta=self.meta)


def stage(cols: Columns, meta: WorkloadMeta) -> StagedWorkload:
    """Sort by arrival (stable), number requests and sessions densely, attach the metadata."""
    n = len(cols.arrival_s)
    n_blocks = np.diff(cols.hash_offsets)
    assert np.array_equal(n_blocks, cols.input_tokens // meta.block_size)
    order = np.argsort(cols.arrival_s, kind="stable")
    n_unsorted = int(np.count_nonzero(np.diff(cols.arrival_s) < 0))
    session = (np.arange(n, dtype=np.int64) if cols.session_key is None
               else _dense_by_first(np.asarray(cols.session_key)[order]))
    wait = (np.full(n, np.nan) if cols.tool_wait_s is None
            else np.asarray(cols.tool_wait_s, dtype=np.float64)[order])
    table = pa.table({
        "request_id": pa.array(np.arange(n, dtype=np.int64)),
        "session_id": pa.array(session),
        "turn": pa.array(np.zeros(n, dtype=np.int32) if cols.session_key is None
                         else turns_of(session)),
        "arrival_s": pa.array(np.asarray(cols.arrival_s, dtype=np.float64)[order]),
        "input_tokens": pa.array(np.asarray(cols.input_tokens, dtype=np.int32)[order]),
        "output_tokens": pa.array(np.asarray(cols.output_tokens, dtype=np.int32)[order]),
        "tool_wait_s": pa.array(wait, type=pa.float64(), from_pandas=True),
        **({} if cols.wait_for is None else {"wait_for": cols.wait_for.column(order)}),
        **({} if cols.delay_s is None else {"delay_s": pa.array(
            np.asarray(cols.delay_s, dtype=np.float64)[order], from_pandas=True)}),
    })
    schema = schema_for(table.column_names)
    table = table.cast(pa.schema([f for f in schema if f.name != "block_hashes"]))
    if n_unsorted and meta.arrival_process is None:
        note = f"{n_unsorted} out-of-order arrival(s) sorted (stable)"
        meta = replace(meta, notes="; ".join(x for x in (meta.notes, note) if x))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_blocks[order], out=offsets[1:])
    hashes = None if cols.hashes is None else np.asarray(cols.hashes, dtype=np.uint64)
    return StagedWorkload(table=table, meta=meta, hashes=hashes,
                          starts=np.asarray(cols.hash_offsets[:-1], dtype=np.int64)[order],
                          offsets=offsets, in_order=n_unsorted == 0)


def dependencies_of(table: pa.Table) -> Dependencies | None:
    """A canonical table's ``wait_for`` as rows of the table (None when it has none)."""
    if "wait_for" not in table.column_names:
        return None
    col = table.column("wait_for").combine_chunks()
    offs = np.asarray(col.offsets, dtype=np.int64)
    ids = table.column("request_id").to_numpy()
    order = np.argsort(ids, kind="stable")
    flat = col.values.to_numpy(zero_copy_only=False)[offs[0]:offs[-1]].astype(np.int64)
    rows = order[np.minimum(np.searchsorted(ids[order], flat), len(ids) - 1)]
    return Dependencies(col.is_valid().to_numpy(zero_copy_only=False), offs - offs[0], rows)


def build_workload(cols: Columns, meta: WorkloadMeta) -> Workload:
    """The canonical in-memory workload of a reader's columns (see :func:`stage`)."""
    return stage(cols, meta).workload()


def _dense_by_first(keys: np.ndarray) -> np.ndarray:
    """Keys renumbered 0, 1, ... in order of first appearance: ["b", "a", "b"] -> [0, 1, 0]."""
    _, first_idx, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(first_idx), dtype=np.int64)
    rank[np.argsort(first_idx, kind="stable")] = np.arange(len(first_idx))
    return rank[inverse].astype(np.int64)


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
    offsets = np.zeros(len(input_tokens) + 1, dtype=np.int64)
    np.cumsum(np.asarray(input_tokens, dtype=np.int64) // block_size, out=offsets[1:])
    return Columns(None, arrival_s, input_tokens, output_tokens, None, offsets)
