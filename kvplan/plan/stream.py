"""The block-access stream the hit-ratio curves are computed from.

Requests are taken in arrival order; each touches its prompt's full blocks **tail first**,
so the head of a chain is the most recently used block of the request (vLLM frees a
request's blocks tail first for the same reason: chain tails are evicted first)::

    request r, block_hashes [h0, h1, h2]   ->  accesses  h2, h1, h0
    later request sharing h0, h1            ->  accesses  ..., h1, h0

With chained hashes every request holding block i+1 also holds block i, so under LRU the
stack distance never decreases from head to tail of a chain: the blocks that hit at a
capacity are exactly a leading prefix of the prompt, as in a prefix cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
from numba import njit

from kvplan.sim.blocks import BlockStream
from kvplan.workload import Workload


@dataclass(frozen=True)
class AccessStream:
    """Dense block ids of a workload's accesses, tail first within each request."""

    ids: np.ndarray
    """Dense block id (kvplan.sim.blocks) of each access, in access order: int32 (int64 from
    2**31 distinct blocks on), half the memory of a 50 M-access stream."""
    offsets: np.ndarray
    """int64, length num_requests + 1: request r's accesses are offsets[r]:offsets[r+1]."""
    num_blocks: int
    """Distinct blocks."""
    block_size: int
    """Tokens per block."""

    @property
    def num_accesses(self) -> int:
        return int(self.ids.size)

    @property
    def num_requests(self) -> int:
        return int(self.offsets.size - 1)


def tail_first(blocks: BlockStream) -> AccessStream:
    """Reverse each request's blocks of a head-first BlockStream.

    Example: ids [5, 6, 7, 5, 6], offsets [0, 3, 5] -> ids [7, 6, 5, 6, 5].
    """
    offsets = np.ascontiguousarray(blocks.offsets, dtype=np.int64)
    ids = np.empty(blocks.num_accesses, dtype=id_dtype(blocks.num_blocks))
    _reverse_segments(np.ascontiguousarray(blocks.ids), offsets, ids)
    return AccessStream(ids=ids, offsets=offsets, num_blocks=blocks.num_blocks,
                        block_size=blocks.block_size)


def head_first(stream: AccessStream) -> BlockStream:
    """The inverse of :func:`tail_first`: each request's blocks back in prefix order, int64 ids
    (what the tier-rules core replays).

    Example: ids [7, 6, 5, 6, 5], offsets [0, 3, 5] -> ids [5, 6, 7, 5, 6].
    """
    ids = np.empty(stream.num_accesses, dtype=np.int64)
    _reverse_segments(np.ascontiguousarray(stream.ids), stream.offsets, ids)
    return BlockStream(ids=ids, offsets=stream.offsets, num_blocks=stream.num_blocks,
                       block_size=stream.block_size)


def id_dtype(num_blocks: int) -> type:
    """int32 while every id fits, else int64."""
    return np.int32 if num_blocks < 2**31 else np.int64


@njit(cache=True)
def _reverse_segments(ids: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    for r in range(offsets.size - 1):
        lo, hi = offsets[r], offsets[r + 1]
        for k in range(hi - lo):
            out[lo + k] = ids[hi - 1 - k]


def select_requests(stream: AccessStream, rows: np.ndarray) -> AccessStream:
    """The stream of requests ``rows`` (increasing) alone, ids renumbered densely by first
    appearance head first, as :func:`access_stream` numbers the sub-workload of those rows.

    O(accesses): one gather and one pass over a per-block map, no re-hashing. Example: ids
    [7, 6, 5, 6, 5] (offsets [0, 3, 5]), rows [1] -> ids [1, 0], offsets [0, 2], 2 blocks.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    lengths = np.diff(stream.offsets)[rows]
    offsets = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.empty(int(offsets[-1]), dtype=stream.ids.dtype)
    count = _renumber(stream.ids, stream.offsets, rows, offsets,
                      np.full(stream.num_blocks, -1, dtype=np.int64), ids)
    return AccessStream(ids=ids, offsets=offsets, num_blocks=count,
                        block_size=stream.block_size)


@njit(cache=True)
def _renumber(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray, new_offsets: np.ndarray,
              new_id: np.ndarray, out: np.ndarray) -> int:
    count = 0
    for k in range(rows.size):
        lo, hi = offsets[rows[k]], offsets[rows[k] + 1]
        base = new_offsets[k]
        for i in range(hi - 1, lo - 1, -1):  # head first, as the hash-based numbering
            b = ids[i]
            if new_id[b] < 0:
                new_id[b] = count
                count += 1
            out[base + (i - lo)] = new_id[b]
    return count


def access_stream(workload: Workload) -> AccessStream:
    """The workload's block accesses in arrival order, tail first within each request."""
    return tail_first(BlockStream.from_workload(workload))


def num_accesses(workload: Workload) -> int:
    """Full prompt blocks over all requests (the stream's length) without building it."""
    col = workload.table.column("block_hashes")
    return int(pc.sum(pc.list_value_length(col)).as_py() or 0)
