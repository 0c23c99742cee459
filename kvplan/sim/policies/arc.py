"""ARC (Megiddo & Modha, FAST'03): adaptive split between recency (T1) and frequency (T2).

T1 holds keys seen once, T2 keys seen at least twice, both in recency order; ghost lists B1
and B2 remember ids recently evicted from each. A new key found in B1 grows the target size
``p`` of T1 by max(1, |B2|/|B1|) and enters T2; one found in B2 shrinks ``p`` by
max(1, |B1|/|B2|) and enters T2; any other new key enters T1. A victim (REPLACE) is the LRU of
T1 when |T1| > p, or |T1| == p and the incoming key came from B2; else the LRU of T2 (the other
list if the chosen one has only pinned keys). Victims join B1 or B2; ghosts are trimmed so
|T1| + |B1| <= c and all four lists hold at most 2c ids.

The tier inserts before choosing victims, so REPLACE counts T1 without the incoming key, as
the original (evict-then-insert) algorithm sees it; room made ahead of inserts (``incoming``
-1) has no incoming key. Each list is searched once per ``victims`` call, resuming where its
last victim was found, so pinned keys are passed once per call.

Region: one list set (T1, T2, B1, B2) over the block ids, then the last inserted key and
whether it came from B2; ``p`` is a float word. Region: (tier, refcount base, list set, nodes,
the two words, p's offset in f, capacity).
"""

from __future__ import annotations

from numba import njit, types

from kvplan.sim.core import lists
from kvplan.sim.core.layout import BLOCKS_AT, CAP, N_BLOCKS, PF, PI, F, I, M, V, pinned_at, th
from kvplan.sim.policies.base import EvictionPolicy, register_eviction

CODE = 4
T1, T2, B1, B2 = 0, 1, 2, 3
LAST_IN, LAST_FROM_B2 = 0, 1
"""Words after the list set."""
Region = types.UniTuple(I, 7)


def words(n_blocks: int, capacity_blocks: int) -> tuple[int, int]:
    return lists.words(n_blocks, 4) + 2, 1


@njit(Region(M, I), cache=True)
def region(m, t):
    ls, n = m[th(t) + PI], m[N_BLOCKS]
    return (t, m[BLOCKS_AT] + t, ls, n, ls + lists.NODE_WORDS * (n + 4), m[th(t) + PF],
            m[th(t) + CAP])


@njit(V(M, F, I), cache=True)
def init(m, f, t):
    v = region(m, t)
    lists.init(m, v[2], v[3], 4)
    m[v[4] + LAST_IN] = -1
    m[v[4] + LAST_FROM_B2] = 0
    f[v[5]] = 0.0


@njit(V(M, Region), cache=True)
def _trim_ghosts(m, v):
    ls, nodes, c = v[2], v[3], v[6]
    t1, t2 = lists.size(m, ls, nodes, T1), lists.size(m, ls, nodes, T2)
    b1 = lists.size(m, ls, nodes, B1)
    for _ in range(min(b1, t1 + b1 - c)):
        lists.pop_front(m, ls, nodes, B1)
    b1, b2 = lists.size(m, ls, nodes, B1), lists.size(m, ls, nodes, B2)
    for _ in range(t1 + t2 + b1 + b2 - 2 * c):
        lists.pop_front(m, ls, nodes, B2 if lists.size(m, ls, nodes, B2) else B1)


@njit(V(M, F, Region, I), cache=True)
def on_insert(m, f, v, key):
    ls, nodes, g, p, c = v[2], v[3], v[4], v[5], float(v[6])
    owner = lists.owner(m, ls, key)
    b1, b2 = float(lists.size(m, ls, nodes, B1)), float(lists.size(m, ls, nodes, B2))
    m[g + LAST_IN] = key
    m[g + LAST_FROM_B2] = 1 if owner == B2 else 0
    if owner == B1:
        f[p] = min(c, f[p] + max(1.0, b2 / b1))
        lists.unlink(m, ls, nodes, key)
        lists.push_back(m, ls, nodes, T2, key)
    elif owner == B2:
        f[p] = max(0.0, f[p] - max(1.0, b1 / b2))
        lists.unlink(m, ls, nodes, key)
        lists.push_back(m, ls, nodes, T2, key)
    else:
        lists.push_back(m, ls, nodes, T1, key)
    _trim_ghosts(m, v)


@njit(V(M, F, Region, I), cache=True)
def on_access(m, f, v, key):
    lists.unlink(m, v[2], v[3], key)
    lists.push_back(m, v[2], v[3], T2, key)


@njit(V(M, F, Region, I), cache=True)
def on_remove(m, f, v, key):
    if lists.owner(m, v[2], key) in (T1, T2):
        lists.unlink(m, v[2], v[3], key)


@njit(I(M, Region, I), cache=True)
def _next_unpinned(m, v, k):
    while k != lists.NONE and pinned_at(m, v[1], k):
        k = lists.after(m, v[2], v[3], k)
    return k


@njit(I(M, F, Region, I, I, I), cache=True)
def victims(m, f, v, n, out, incoming):
    ls, nodes, g = v[2], v[3], v[4]
    p = f[v[5]]
    from_b2 = incoming >= 0 and incoming == m[g + LAST_IN] and m[g + LAST_FROM_B2] == 1
    t1 = lists.size(m, ls, nodes, T1)
    if incoming >= 0 and lists.owner(m, ls, incoming) == T1:
        t1 -= 1
    scan1, scan2 = lists.first(m, ls, nodes, T1), lists.first(m, ls, nodes, T2)
    got = 0
    while got < n:
        prefer_t1 = t1 > p or (from_b2 and t1 == p)
        key = lists.NONE
        for i in range(2):
            if prefer_t1 == (i == 0):
                key = _next_unpinned(m, v, scan1)
                if key != lists.NONE:
                    scan1 = lists.after(m, ls, nodes, key)
                    lists.unlink(m, ls, nodes, key)
                    lists.push_back(m, ls, nodes, B1, key)
                    t1 -= 1
                    break
                scan1 = lists.NONE
            else:
                key = _next_unpinned(m, v, scan2)
                if key != lists.NONE:
                    scan2 = lists.after(m, ls, nodes, key)
                    lists.unlink(m, ls, nodes, key)
                    lists.push_back(m, ls, nodes, B2, key)
                    break
                scan2 = lists.NONE
        if key == lists.NONE:
            break
        m[out + got] = key
        got += 1
    _trim_ghosts(m, v)
    return got


POLICY = register_eviction(EvictionPolicy(
    "arc", CODE, words, init, region, on_insert, on_access, on_remove, victims))
