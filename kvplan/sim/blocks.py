"""Dense block ids: the workload's chained uint64 hashes as one int64 access stream.

The simulator indexes arrays by block, so each distinct hash gets a dense id ``0..n-1`` in
order of first appearance (one pass over an open-addressing hash table, :func:`dense_ids`):
a prompt's blocks get neighbouring ids, which keeps the simulator's per-block arrays
cache-friendly. Request ``r``'s prompt blocks are
``ids[offsets[r]:offsets[r + 1]]``, requests in table (= arrival) order::

    block_hashes  [[h9, h4], [h9, h4, h7], [h2]]
    ids           [ 0,  1,    0,  1,  2,    3 ]
    offsets       [0, 2, 5, 6]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numba import njit

from kvplan.workload.schema import Workload
from kvplan.workload.validate import block_hash_lists


@dataclass(frozen=True)
class FutureUses:
    """When each block is used, for offline oracles: block k's uses, sorted, are
    ``ranks[offsets[k]:offsets[k + 1]]``, each the index of its time in ``distinct_times``
    (equal times, equal ranks)."""

    offsets: np.ndarray
    """int64, num_blocks + 1."""
    ranks: np.ndarray
    """int64, one per access."""
    distinct_times: np.ndarray
    """float64, sorted."""


@dataclass(frozen=True)
class BlockStream:
    """The block-access stream of a workload, with dense ids and per-request offsets."""

    ids: np.ndarray
    """int64 dense block id of every prompt block, requests concatenated in arrival order."""
    offsets: np.ndarray
    """int64, length num_requests + 1: request r owns ids[offsets[r]:offsets[r + 1]]."""
    num_blocks: int
    """Distinct blocks (ids are 0..num_blocks-1, numbered by first appearance)."""
    block_size: int
    """Tokens per block."""

    @property
    def num_requests(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_accesses(self) -> int:
        return len(self.ids)

    def future_uses(self, request_times: np.ndarray | None = None) -> FutureUses:
        """Every block's use times for offline oracles (kvplan.sim.policies.belady).

        ``request_times[r]`` is when request r uses its blocks: by default its index in
        arrival order (cache mode's clock), or e.g. arrival seconds in event mode (non-
        decreasing, as the workload's arrivals are)::

            prompts [[7, 3], [7]] (ids 0, 1, 0), times [0., 1.]
            ->  offsets [0, 2, 3], ranks [0, 1, 0], distinct_times [0., 1.]
        """
        times = (np.arange(self.num_requests, dtype=np.float64) if request_times is None
                 else np.asarray(request_times, dtype=np.float64))
        distinct, request_rank = np.unique(times, return_inverse=True)
        ranks = np.repeat(request_rank.reshape(-1).astype(np.int64), np.diff(self.offsets))
        counts = np.bincount(self.ids, minlength=self.num_blocks)
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        by_block = _group_by_block(np.ascontiguousarray(self.ids, np.int64), ranks, offsets,
                                   bool(np.any(np.diff(times) < 0)))
        return FutureUses(offsets, by_block, distinct)

    @classmethod
    def from_hash_lists(cls, hashes: pa.ListArray | list[list[int]], block_size: int
                        ) -> BlockStream:
        """Build from per-request hash lists (an Arrow ``list<uint64>`` array or Python lists)."""
        arr = hashes if isinstance(hashes, pa.Array) else pa.array(hashes, pa.list_(pa.uint64()))
        if arr.type != pa.list_(pa.uint64()):
            arr = arr.cast(pa.list_(pa.uint64()))  # a cast to the same type still copies
        offsets = np.asarray(arr.offsets, dtype=np.int64)
        values = np.asarray(arr.values, dtype=np.uint64)[offsets[0]:offsets[-1]]
        ids, num_blocks = dense_ids(values)
        return cls(ids=ids, offsets=offsets - offsets[0], num_blocks=num_blocks,
                   block_size=block_size)

    @classmethod
    def from_workload(cls, workload: Workload) -> BlockStream:
        """The workload's block-access stream in arrival (= table row) order."""
        return cls.from_hash_lists(block_hash_lists(workload.table), workload.block_size)


def dense_ids(values: np.ndarray) -> tuple[np.ndarray, int]:
    """int64 id of each uint64 value, numbered 0, 1, ... by first appearance, and the count.

    O(n) expected: one pass over an open-addressing table (linear probing, Fibonacci hashing)
    that doubles when half full; a slot holds the key and 1 + its id side by side (0: empty),
    so a probe costs one cache miss. Example: [9, 4, 9, 7] -> ([0, 1, 0, 2], 3).
    """
    return _dense_ids(np.ascontiguousarray(values, dtype=np.uint64))


@njit(cache=True)
def _dense_ids(values: np.ndarray) -> tuple[np.ndarray, int]:
    out = np.empty(values.size, dtype=np.int64)
    bits = 10
    table = np.zeros(2 << bits, dtype=np.uint64)
    count = 0
    for i in range(values.size):
        if 2 * (count + 1) > (1 << bits):
            bits += 1
            table = _grow(table, bits)
        v = values[i]
        s = _slot(table, v, bits)
        if table[2 * s + 1] == 0:
            table[2 * s] = v
            count += 1
            table[2 * s + 1] = count
        out[i] = np.int64(table[2 * s + 1]) - 1
    return out, count


@njit(cache=True, inline="always")
def _slot(table: np.ndarray, v: np.uint64, bits: int) -> int:
    """The slot holding ``v``, or the empty slot where it goes."""
    mask = np.int64((1 << bits) - 1)
    s = np.int64((v * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))
    while table[2 * s + 1] != 0 and table[2 * s] != v:
        s = (s + 1) & mask
    return s


@njit(cache=True)
def _grow(table: np.ndarray, bits: int) -> np.ndarray:
    new = np.zeros(2 << bits, dtype=np.uint64)
    for j in range(table.size // 2):
        if table[2 * j + 1] != 0:
            s = _slot(new, table[2 * j], bits)
            new[2 * s] = table[2 * j]
            new[2 * s + 1] = table[2 * j + 1]
    return new


@njit(cache=True)
def _group_by_block(ids, ranks, offsets, unordered):
    """``ranks`` regrouped by block (block k's at offsets[k]:offsets[k + 1]), in access order
    (a counting sort: one pass); each block's sorted when the times were not in order."""
    out = np.empty_like(ranks)
    cursor = offsets[:-1].copy()
    for i in range(len(ids)):
        b = ids[i]
        out[cursor[b]] = ranks[i]
        cursor[b] += 1
    if unordered:
        for k in range(len(offsets) - 1):
            out[offsets[k]:offsets[k + 1]].sort()
    return out
