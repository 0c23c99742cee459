"""Exact LRU stack distances in one pass (Mattson et al. 1970, Bennett & Kruskal 1975).

The stack distance of an access is the number of *distinct other* blocks touched since the
previous access to the same block; an LRU cache of C blocks hits exactly the accesses with
distance < C, so one pass gives the hit ratio of every capacity at once. A Fenwick tree over
access positions holds a 1 at each block's most recent access; the distance of an access at
position t whose block was last seen at p is the count of ones in (p, t)::

    accesses   a  b  c  b  a
    position   0  1  2  3  4
    distance   -  -  -  1  2      (b at 3: {c} since 1;  a at 4: {b, c} since 0)

First accesses get COLD (-1): they miss at every capacity. O(n log n) time, O(n) memory.
"""

from __future__ import annotations

import numpy as np
from numba import njit

COLD = -1
"""Stack distance of a first access (infinite)."""


def stack_distances(ids: np.ndarray, num_ids: int | None = None,
                    offsets: np.ndarray | None = None) -> np.ndarray:
    """LRU stack distance of each access (int64; COLD for first accesses).

    ``ids`` are dense block ids (any integer type) in access order (0 <= id < num_ids). With ``offsets``
    (request r = accesses offsets[r]:offsets[r+1]) a request looks all its blocks up before
    touching any, as a prefix cache does: distances count distinct blocks touched by earlier
    requests only. Example: ids [0, 1, 2, 1, 0] -> [-1, -1, -1, 1, 2]; with offsets
    [0, 3, 5] (requests [0, 1, 2] and [1, 0]) -> [-1, -1, -1, 1, 2] as well, while ids
    [0, 1, 0] in one request -> [-1, -1, -1] (no block is cached before the request).
    """
    ids = np.ascontiguousarray(ids)
    if ids.dtype.kind not in "iu":
        ids = ids.astype(np.int64)
    if num_ids is None:
        num_ids = int(ids.max()) + 1 if ids.size else 0
    if offsets is None:
        offsets = np.arange(ids.size + 1, dtype=np.int64)
    return _stack_distances(ids, num_ids, np.ascontiguousarray(offsets, dtype=np.int64))


@njit(cache=True)
def _stack_distances(ids: np.ndarray, num_ids: int, offsets: np.ndarray) -> np.ndarray:
    n = ids.size
    tree = np.zeros(n + 1, dtype=np.int32)
    last = np.full(num_ids, -1, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    live = 0
    for r in range(offsets.size - 1):
        lo, hi = offsets[r], offsets[r + 1]
        for t in range(lo, hi):  # look-ups against the state before the request
            p = last[ids[t]]
            if p < 0:
                out[t] = COLD
                continue
            s = 0  # ones at positions <= p (p's own included); the rest lie in (p, lo)
            i = p + 1
            while i > 0:
                s += tree[i]
                i -= i & (-i)
            out[t] = live - s
        for t in range(lo, hi):  # then touch, in access order
            b = ids[t]
            p = last[b]
            if p < 0:
                live += 1
            else:
                i = p + 1
                while i <= n:
                    tree[i] -= 1
                    i += i & (-i)
            i = t + 1
            while i <= n:
                tree[i] += 1
                i += i & (-i)
            last[b] = t
    return out
