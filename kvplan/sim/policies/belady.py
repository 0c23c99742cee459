"""Belady / MIN: evict the key whose next use is farthest in the future. An offline ORACLE.

It reads the workload's future (each block's use times, kvplan.sim.core.state), so no real
system can run it: its hit ratio is an upper bound for the online policies, and every output
labels it so. Among keys with the same next use (e.g. never used again) the least recently
touched goes first, so a request's chain tails, touched first, leave before its head.

Times are ranks among the distinct use times (equal times, equal ranks), so a key's priority
packs into one int64: ``next use rank << SEQ_BITS | (SEQ_MASK - touch sequence)``, a larger
priority leaving first. Keys sit in an indexed 4-ary max-heap (a position per key, so a
touch updates the key in place). A key whose next use has passed without it being touched
(the use was served by another tier) is recomputed when it reaches the top. Worked example,
uses of block 7 at times [2, 9] (ranks 1, 4 of 5 distinct times), NOW 3: next use rank 4;
at NOW 9.5: none, rank 5 (past every time), so it is the first victim.

Region: position per key (-1: not in the heap), the heap's priorities and keys, scratch for
pinned keys met at the top, and two counters (heap size, touch sequence). Region: (tier,
refcount base, positions, priorities, keys, held priorities, held keys, counters).
"""

from __future__ import annotations

from numba import njit, types

from kvplan.sim.core.layout import (
    BLOCKS_AT,
    CAP,
    CURSOR_AT,
    DISTINCT_AT,
    FUTURE_AT,
    FUTURE_R_AT,
    N_BLOCKS,
    N_DISTINCT,
    NOW,
    NOW_HI,
    NOW_LO,
    NOW_SEEN,
    PI,
    F,
    I,
    M,
    V,
    pinned_at,
    th,
)
from kvplan.sim.policies.base import EvictionPolicy, register_eviction

CODE = 5
SEQ_BITS = 36
SEQ_MASK = (1 << SEQ_BITS) - 1
SIZE, SEQ = 0, 1
"""Counter words."""
ARITY = 4
Region = types.UniTuple(I, 8)


def words(n_blocks: int, capacity_blocks: int) -> tuple[int, int]:
    heap = capacity_blocks + 2
    return n_blocks + 4 * heap + 2, 0


@njit(Region(M, I), cache=True)
def region(m, t):
    pos, n, heap = m[th(t) + PI], m[N_BLOCKS], m[th(t) + CAP] + 2
    prio = pos + n
    return (t, m[BLOCKS_AT] + t, pos, prio, prio + heap, prio + 2 * heap, prio + 3 * heap,
            prio + 4 * heap)


@njit(V(M, F, I), cache=True)
def init(m, f, t):
    v = region(m, t)
    for k in range(m[N_BLOCKS]):
        m[v[2] + k] = -1
    m[v[7] + SIZE] = m[v[7] + SEQ] = 0


@njit(V(M, F), cache=True)
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


@njit(I(M, F, I), cache=True)
def next_use(m, f, key):
    """Rank of ``key``'s first use after NOW (N_DISTINCT: none). NOW never decreases, so a
    per-key cursor into its sorted use ranks only moves forward."""
    _now_ranks(m, f)
    cur = m[CURSOR_AT] + key
    hi, ranks, after = m[m[FUTURE_AT] + key + 1], m[FUTURE_R_AT], m[NOW_HI]
    i = m[cur]
    while i < hi and m[ranks + i] < after:
        i += 1
    m[cur] = i
    return m[ranks + i] if i < hi else m[N_DISTINCT]


@njit(V(M, Region, I, I), cache=True)
def _place(m, v, i, k):
    """Key ``k`` (its priority already at slot i's) at heap slot ``i``."""
    m[v[4] + i] = k
    m[v[2] + k] = i


@njit(V(M, Region, I), cache=True)
def _sift_up(m, v, i):
    prio, keys = v[3], v[4]
    p, k = m[prio + i], m[keys + i]
    while i > 0:
        parent = (i - 1) // ARITY
        if m[prio + parent] >= p:
            break
        m[prio + i] = m[prio + parent]
        _place(m, v, i, m[keys + parent])
        i = parent
    m[prio + i] = p
    _place(m, v, i, k)


@njit(V(M, Region, I), cache=True)
def _sift_down(m, v, i):
    prio, keys, size = v[3], v[4], m[v[7] + SIZE]
    p, k = m[prio + i], m[keys + i]
    while True:
        best, best_p = -1, p
        first = ARITY * i + 1
        for c in range(first, min(first + ARITY, size)):
            if m[prio + c] > best_p:
                best, best_p = c, m[prio + c]
        if best < 0:
            break
        m[prio + i] = best_p
        _place(m, v, i, m[keys + best])
        i = best
    m[prio + i] = p
    _place(m, v, i, k)


@njit(V(M, Region, I, I), cache=True)
def _set(m, v, k, p):
    """Give key ``k`` priority ``p``, adding it to the heap if absent."""
    i = m[v[2] + k]
    if i < 0:
        i = m[v[7] + SIZE]
        m[v[7] + SIZE] = i + 1
        m[v[3] + i] = p
        m[v[4] + i] = k
        _sift_up(m, v, i)
        return
    old = m[v[3] + i]
    m[v[3] + i] = p
    if p > old:
        _sift_up(m, v, i)
    else:
        _sift_down(m, v, i)


@njit(V(M, Region, I), cache=True)
def _drop(m, v, k):
    """Take key ``k`` out of the heap."""
    i = m[v[2] + k]
    m[v[2] + k] = -1
    last = m[v[7] + SIZE] - 1
    m[v[7] + SIZE] = last
    if i == last:
        return
    m[v[3] + i], m[v[4] + i] = m[v[3] + last], m[v[4] + last]
    m[v[2] + m[v[4] + i]] = i
    if i > 0 and m[v[3] + i] > m[v[3] + (i - 1) // ARITY]:
        _sift_up(m, v, i)
    else:
        _sift_down(m, v, i)


@njit(V(M, F, Region, I), cache=True)
def _touch(m, f, v, key):
    """A fresh priority: next use now, newest touch."""
    m[v[7] + SEQ] += 1
    _set(m, v, key, (next_use(m, f, key) << SEQ_BITS) | (SEQ_MASK - m[v[7] + SEQ]))


@njit(V(M, F, Region, I), cache=True)
def on_insert(m, f, v, key):
    _touch(m, f, v, key)


@njit(V(M, F, Region, I), cache=True)
def on_access(m, f, v, key):
    _touch(m, f, v, key)


@njit(V(M, F, Region, I), cache=True)
def on_remove(m, f, v, key):
    if m[v[2] + key] >= 0:
        _drop(m, v, key)


@njit(I(M, F, Region, I, I, I), cache=True)
def victims(m, f, v, n, out, incoming):
    _now_ranks(m, f)
    ref0, prio, keys, held_p, held_k = v[1], v[3], v[4], v[5], v[6]
    got = held = 0
    while m[v[7] + SIZE] > 0 and got < n:
        p, k = m[prio], m[keys]
        if (p >> SEQ_BITS) < m[NOW_LO]:
            _touch(m, f, v, k)
        elif pinned_at(m, ref0, k):
            _drop(m, v, k)
            m[held_p + held], m[held_k + held] = p, k
            held += 1
        else:
            _drop(m, v, k)
            m[out + got] = k
            got += 1
    for i in range(held):
        _set(m, v, m[held_k + i], m[held_p + i])
    return got


POLICY = register_eviction(EvictionPolicy(
    "belady", CODE, words, init, region, on_insert, on_access, on_remove, victims, is_oracle=True))
