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

from kvplan.sim.blocks import BlockStream
from kvplan.workload import Workload


@dataclass(frozen=True)
class AccessStream:
    """Dense block ids of a workload's accesses, tail first within each request."""

    ids: np.ndarray
    """int64 dense block id (kvplan.sim.blocks) of each access, in access order."""
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
    offsets = np.asarray(blocks.offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    starts = np.repeat(offsets[:-1], lengths)
    ends = np.repeat(offsets[1:], lengths)
    j = np.arange(int(offsets[-1]), dtype=np.int64)
    return AccessStream(ids=np.asarray(blocks.ids, dtype=np.int64)[starts + ends - 1 - j],
                        offsets=offsets, num_blocks=blocks.num_blocks,
                        block_size=blocks.block_size)


def access_stream(workload: Workload) -> AccessStream:
    """The workload's block accesses in arrival order, tail first within each request."""
    return tail_first(BlockStream.from_workload(workload))


def num_accesses(workload: Workload) -> int:
    """Full prompt blocks over all requests (the stream's length) without building it."""
    col = workload.table.column("block_hashes")
    return int(pc.sum(pc.list_value_length(col)).as_py() or 0)
