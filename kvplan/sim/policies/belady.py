"""Belady / MIN: evict the block whose next use is farthest in the future. An offline ORACLE.

It reads the workload's future (each block's use times, kvplan.sim.blocks.FutureUses), so no
real system can run it: its hit ratio is an upper bound for the online policies, and every
output labels it so. Among blocks with the same next use (e.g. never used again) the least
recently touched goes first, so a request's chain tails, touched first, leave before its
head.

Times are ranks among the distinct use times (equal times, equal ranks; ``NEVER`` = past the
last one). Slots sit in one *bucket* list per next-use rank, in touch order; victims come from
the highest non-empty bucket, oldest first, passing pinned blocks. A block whose next use has
passed without it being touched (the use was served by another tier) gets its next use
recomputed when the search meets it, and the search starts again from the top. Worked example,
uses of block 7 at ranks [1, 4] of 5 distinct times: touched at time rank 2 it goes to bucket
4; touched after rank 4, to bucket 5 (never again), the first place victims are taken from.

Region: one list set over the pool with a bucket per rank and one for never, then the highest
bucket that may be non-empty. Region tuple: (tier, refcount base, slot keys, list set, pool,
buckets, top's offset).
"""

from __future__ import annotations

from numba import types

from kvplan.sim.core import lists, slots
from kvplan.sim.core.layout import (
    BLOCKS_AT,
    CURSOR_AT,
    DISTINCT_AT,
    FUTURE_AT,
    FUTURE_R_AT,
    KEYS_AT,
    N_DISTINCT,
    NOW,
    NOW_HI,
    NOW_LO,
    NOW_SEEN,
    PI,
    POOL,
    F,
    I,
    M,
    V,
    compiled,
    inline,
    th,
)
from kvplan.sim.policies.base import EvictionPolicy, register_eviction

CODE = 5
Region = types.UniTuple(I, 7)
LS, NODES, BUCKETS, TOP = 3, 4, 5, 6
"""Region tuple indices."""


def pool(capacity_blocks: int) -> int:
    return capacity_blocks + 1


def words(capacity_blocks: int, times: int = 0) -> tuple[int, int]:
    return lists.words(pool(capacity_blocks), times + 1) + 1, 0


@compiled(Region(M, I))
def region(m, t):
    h = th(t)
    ls, n, buckets = m[h + PI], m[h + POOL], m[N_DISTINCT] + 1
    return t, m[BLOCKS_AT] + t, m[h + KEYS_AT], ls, n, buckets, ls + lists.words(n, buckets)


@compiled(V(M, F, I))
def init(m, f, t):
    v = region(m, t)
    lists.init(m, v[LS], v[NODES], v[BUCKETS])
    m[v[TOP]] = 0


@inline
def _now_ranks(m, f):
    """NOW_LO / NOW_HI for f[NOW]: distinct use times < NOW and <= NOW (binary search)."""
    if f[NOW] == f[NOW_SEEN] and m[NOW_HI] >= 0:
        return
    times, n, now = m[DISTINCT_AT], m[N_DISTINCT], f[NOW]
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if f[times + mid] < now:
            lo = mid + 1
        else:
            hi = mid
    m[NOW_LO] = lo
    while lo < n and f[times + lo] <= now:
        lo += 1
    m[NOW_HI] = lo
    f[NOW_SEEN] = now


@inline
def next_use(m, f, key):
    """Rank of ``key``'s first use after NOW (N_DISTINCT: never). NOW never decreases, so a
    per-block cursor into its sorted use ranks only moves forward."""
    _now_ranks(m, f)
    cur = m[CURSOR_AT] + key
    hi, ranks, after = m[m[FUTURE_AT] + key + 1], m[FUTURE_R_AT], m[NOW_HI]
    i = m[cur]
    while i < hi and m[ranks + i] < after:
        i += 1
    m[cur] = i
    return m[ranks + i] if i < hi else m[N_DISTINCT]


@inline
def _touch(m, f, v, s):
    """Slot ``s`` to the end of its next use's bucket (the newest touch)."""
    if lists.owner(m, v[LS], s) != lists.NONE:
        lists.unlink(m, v[LS], v[NODES], s)
    b = next_use(m, f, m[v[2] + s])
    lists.push_back(m, v[LS], v[NODES], b, s)
    if b > m[v[TOP]]:
        m[v[TOP]] = b


@inline
def on_insert(m, f, v, s):
    _touch(m, f, v, s)


@inline
def on_access(m, f, v, s):
    _touch(m, f, v, s)


@inline
def on_remove(m, f, v, s):
    if lists.owner(m, v[LS], s) != lists.NONE:
        lists.unlink(m, v[LS], v[NODES], s)
    return False


@inline
def _search(m, f, v, incoming, pins):
    """The next victim (-1: none): the oldest unpinned slot of the highest bucket holding
    one; a slot met in a bucket whose time has passed is re-bucketed and the search
    restarts (as a heap ordered by (next use, touch) would pop it first)."""
    ls, nodes, top = v[LS], v[NODES], v[TOP]
    b = m[top]
    while b >= 0:
        s = lists.first(m, ls, nodes, b)
        if s == lists.NONE and b == m[top]:
            m[top] = b - 1
        while s != lists.NONE:
            if b < m[NOW_LO]:
                _touch(m, f, v, s)
                return -2
            if not slots.held(m, v, s, incoming, pins):
                return s
            s = lists.after(m, ls, nodes, s)
        b -= 1
    return lists.NONE


@inline
def victims(m, f, v, n, out, incoming):
    _now_ranks(m, f)
    pins = slots.any_pinned(m, v[0])
    got = 0
    while got < n:
        s = _search(m, f, v, incoming, pins)
        if s == -2:
            continue
        if s == lists.NONE:
            break
        lists.unlink(m, v[LS], v[NODES], s)
        m[out + got] = s
        got += 1
    return got


POLICY = register_eviction(EvictionPolicy(
    "belady", CODE, pool, words, init, region, on_insert, on_access, on_remove, victims,
    is_oracle=True))
