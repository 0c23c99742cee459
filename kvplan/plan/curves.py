"""Hit-ratio curves for every capacity at once, single- and multi-tier.

An LRU tier of C blocks hits the accesses with stack distance < C. Stacked LRU tiers are
read off the same curve H(C) (hits at capacity C)::

    inclusive (each tier keeps a copy of what is above it):
        HBM  H(c1)        DRAM  H(max(c1, c2)) - H(c1)     SSD  H(max(c1, c2, c3)) - H(max(c1, c2))
    exclusive (a block lives in one tier; evictions demote one level down, LRU order):
        HBM  H(c1)        DRAM  H(c1 + c2) - H(c1)          SSD  H(c1 + c2 + c3) - H(c1 + c2)

Both are exact for LRU at every level (an inclusive LRU level below sees the same recency
order; an exclusive demotion chain is one LRU stack cut into consecutive segments).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from kvplan.plan.stackdist import COLD

INF = np.iinfo(np.int64).max
"""Prefix distance of a block that misses at every capacity."""


@dataclass(frozen=True)
class HitCurve:
    """Hits as a step function of capacity (blocks): H(C) = cum_hits[last i with distance[i] < C]."""

    distance: np.ndarray
    """Sorted distinct stack distances (int64)."""
    cum_hits: np.ndarray
    """float64: accesses with stack distance <= distance[i]."""
    total: float
    """All accesses, cold ones included (the hit-ratio denominator)."""

    def hits(self, capacity_blocks: np.ndarray | float) -> np.ndarray:
        """Hits at each capacity (blocks); 0 at capacity 0."""
        cum = np.concatenate([[0.0], self.cum_hits])
        return cum[np.searchsorted(self.distance, np.asarray(capacity_blocks), side="left")]

    def hit_ratio(self, capacity_blocks: np.ndarray | float) -> np.ndarray:
        """Hit ratio (hits / all accesses) at each capacity."""
        return self.hits(capacity_blocks) / self.total if self.total else np.zeros_like(
            np.asarray(capacity_blocks, dtype=np.float64))


def curve_from_distances(sd: np.ndarray) -> HitCurve:
    """Exact curve from per-access stack distances (COLD = miss everywhere).

    Example: distances [-1, -1, -1, 1, 2] -> H(1) = 0, H(2) = 1, H(3) = 2 of 5 accesses.
    """
    warm = sd[sd != COLD]
    dist, counts = np.unique(warm, return_counts=True)
    return HitCurve(distance=dist.astype(np.int64), cum_hits=np.cumsum(counts).astype(np.float64),
                    total=float(sd.size))


def pooled_curve(curves: list[HitCurve]) -> HitCurve:
    """Hits of R caches of capacity C each, one per stream: H(C) = sum over r of H_r(C).

    Example: distances {1: 2 hits} and {1: 1, 3: 1} -> distance [1, 3], cum_hits [3, 4].
    """
    dist = np.concatenate([c.distance for c in curves])
    counts = np.concatenate([np.diff(c.cum_hits, prepend=0.0) for c in curves])
    uniq, inv = np.unique(dist, return_inverse=True)
    return HitCurve(distance=uniq, cum_hits=np.cumsum(np.bincount(inv.reshape(-1),
                                                                  weights=counts)),
                    total=float(sum(c.total for c in curves)))


def tier_thresholds(c_hbm: np.ndarray, c_dram: np.ndarray, c_ssd: np.ndarray, inclusive: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capacities (blocks) below which an access hits HBM, HBM-or-DRAM, any tier.

    Example: c = (10, 30, 100): inclusive -> (10, 30, 100); exclusive -> (10, 40, 140).
    """
    c1, c2, c3 = (np.asarray(c, dtype=np.int64) for c in (c_hbm, c_dram, c_ssd))
    if inclusive:
        b = np.maximum(c1, c2)
        return c1, b, np.maximum(b, c3)
    return c1, c1 + c2, c1 + c2 + c3


def tier_hits(curve: HitCurve, c_hbm, c_dram, c_ssd, inclusive: bool
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hits served by HBM, DRAM and SSD for tier capacities in blocks (broadcast arrays)."""
    a, b, c = tier_thresholds(c_hbm, c_dram, c_ssd, inclusive)
    ha, hb, hc = curve.hits(a), curve.hits(b), curve.hits(c)
    return ha, hb - ha, hc - hb


def prefix_distances(sd: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per access, the largest stack distance from the head of its chain down to it.

    Accesses are tail first within a request (kvplan.plan.stream), so the head is the last
    access of a segment. A block is a *prefix* hit at capacity C iff its prefix distance < C;
    with chained hashes this equals its own distance. COLD becomes INF.
    Example: one request, sd (tail first) [5, -1, 2] -> [INF, INF, 2].
    """
    return _prefix_distances(np.ascontiguousarray(sd, dtype=np.int64),
                             np.ascontiguousarray(offsets, dtype=np.int64))


@njit(cache=True)
def _prefix_distances(sd: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = np.empty_like(sd)
    for r in range(offsets.size - 1):
        run = np.int64(-1)
        for i in range(offsets[r + 1] - 1, offsets[r] - 1, -1):
            d = sd[i] if sd[i] != COLD else INF
            run = max(run, d)
            out[i] = run
    return out


def request_hits(pd: np.ndarray, offsets: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """Prefix blocks of each request hit at each capacity: int32 array (requests, capacities).

    ``pd`` from :func:`prefix_distances`. Example: pd [INF, 7, 3] (one request), capacities
    [4, 8] -> [[1, 2]].
    """
    return _request_hits(pd, np.ascontiguousarray(offsets, dtype=np.int64),
                         np.ascontiguousarray(capacities, dtype=np.int64))


@njit(cache=True)
def _request_hits(pd: np.ndarray, offsets: np.ndarray, caps: np.ndarray) -> np.ndarray:
    n = offsets.size - 1
    out = np.zeros((n, caps.size), dtype=np.int32)
    for r in range(n):
        seg = pd[offsets[r]:offsets[r + 1]][::-1].copy()  # head first: non-decreasing
        for k in range(caps.size):
            out[r, k] = np.searchsorted(seg, caps[k], side="left")
    return out


def warm_prefix_blocks(ids: np.ndarray, offsets: np.ndarray, num_ids: int) -> np.ndarray:
    """Per request, the leading prompt blocks (from the head) that an earlier request touched:
    its prefix hits in an unbounded cache. ``ids`` tail first within each request
    (kvplan.plan.stream). Example: ids [1, 0, 2, 0], offsets [0, 2, 4] (prompts [0, 1] and
    [0, 2]) -> [0, 1].
    """
    return _warm_prefix(np.ascontiguousarray(ids),
                        np.ascontiguousarray(offsets, dtype=np.int64), num_ids)


@njit(cache=True)
def _warm_prefix(ids: np.ndarray, offsets: np.ndarray, num_ids: int) -> np.ndarray:
    seen = np.zeros(num_ids, dtype=np.bool_)
    out = np.zeros(offsets.size - 1, dtype=np.int64)
    for r in range(offsets.size - 1):
        lo, hi = offsets[r], offsets[r + 1]
        i = hi - 1
        while i >= lo and seen[ids[i]]:
            i -= 1
        out[r] = hi - 1 - i
        for t in range(lo, hi):
            seen[ids[t]] = True
    return out
