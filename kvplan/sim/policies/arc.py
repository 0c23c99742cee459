"""ARC (Megiddo & Modha, FAST'03): adaptive split between recency (T1) and frequency (T2).

T1 holds blocks seen once, T2 blocks seen at least twice, both in recency order; ghost lists
B1 and B2 remember blocks recently evicted from each. A new block found in B1 grows the target
size ``p`` of T1 by max(1, |B2|/|B1|) and enters T2; one found in B2 shrinks ``p`` by
max(1, |B1|/|B2|) and enters T2; any other new block enters T1. A victim (REPLACE) is the LRU
of T1 when |T1| > p, or |T1| == p and the incoming block came from B2; else the LRU of T2
(the other list if the chosen one has only pinned blocks). Victims join B1 or B2; ghosts are
trimmed so |T1| + |B1| <= c and all four lists hold at most 2c entries, counted as the
original counts them: after the victim of an insert into a full tier has left (trimming while
the incoming block is still counted beside it would drop one ghost too many).

The tier inserts before choosing victims, so REPLACE counts T1 without the incoming block, as
the original (evict-then-insert) algorithm sees it; room made ahead of inserts (``incoming``
-1) has no incoming block. Each list is searched once per ``victims`` call, resuming where
its last victim was found, so pinned blocks are passed once per call. A ghost entry keeps its
slot (kvplan.sim.core.slots) until it is trimmed.

Region: one list set (T1, T2, B1, B2) over the pool, then the last inserted slot and whether
it came from B2; ``p`` is a float word. Region tuple: (tier, refcount base, slot keys, list
set, pool, the two words, p's offset in f, capacity).
"""

from __future__ import annotations

from kvplan.sim.core import lists, slots
from kvplan.sim.core.layout import (
    BLOCKS_AT,
    CAP,
    KEYS_AT,
    PF,
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

CODE = 4
T1, T2, B1, B2 = 0, 1, 2, 3
LAST_IN, LAST_FROM_B2 = 0, 1
"""Words after the list set."""


def pool(capacity_blocks: int) -> int:
    """Resident blocks (c, + the one being inserted) and ghosts: B1 + B2 <= 2c - |T1 + T2|,
    up to 2c while HBM blocks wait in reserved room unseen by the policy (+ one added)."""
    return 3 * capacity_blocks + 3


def words(capacity_blocks: int, times: int = 0) -> tuple[int, int]:
    return lists.words(pool(capacity_blocks), 4) + 2, 1


@inline
def region(m, t):
    h = th(t)
    ls, n = m[h + PI], m[h + POOL]
    return (t, m[BLOCKS_AT] + t, m[h + KEYS_AT], ls, n, ls + lists.words(n, 4), m[h + PF],
            m[h + CAP])


@compiled(V(M, F, I))
def init(m, f, t):
    v = region(m, t)
    lists.init(m, v[3], v[4], 4)
    m[v[5] + LAST_IN] = -1
    m[v[5] + LAST_FROM_B2] = 0
    f[v[6]] = 0.0


@inline
def _trim_ghosts(m, v):
    t, ls, nodes, c = v[0], v[3], v[4], v[7]
    t1, t2 = lists.size(m, ls, nodes, T1), lists.size(m, ls, nodes, T2)
    b1 = lists.size(m, ls, nodes, B1)
    for _ in range(min(b1, t1 + b1 - c)):
        slots.forget(m, t, lists.pop_front(m, ls, nodes, B1))
    b1, b2 = lists.size(m, ls, nodes, B1), lists.size(m, ls, nodes, B2)
    for _ in range(t1 + t2 + b1 + b2 - 2 * c):
        slots.forget(m, t, lists.pop_front(m, ls, nodes,
                                           B2 if lists.size(m, ls, nodes, B2) else B1))


@inline
def on_insert(m, f, v, s):
    ls, nodes, g, p, c = v[3], v[4], v[5], v[6], float(v[7])
    owner = lists.owner(m, ls, s)
    b1, b2 = float(lists.size(m, ls, nodes, B1)), float(lists.size(m, ls, nodes, B2))
    m[g + LAST_IN] = s
    m[g + LAST_FROM_B2] = 1 if owner == B2 else 0
    if owner == B1:
        f[p] = min(c, f[p] + max(1.0, b2 / b1))
        lists.unlink(m, ls, nodes, s)
        lists.push_back(m, ls, nodes, T2, s)
    elif owner == B2:
        f[p] = max(0.0, f[p] - max(1.0, b1 / b2))
        lists.unlink(m, ls, nodes, s)
        lists.push_back(m, ls, nodes, T2, s)
    else:
        lists.push_back(m, ls, nodes, T1, s)
    if lists.size(m, ls, nodes, T1) + lists.size(m, ls, nodes, T2) <= v[7]:
        _trim_ghosts(m, v)  # else a victim follows and ``victims`` trims after it


@inline
def on_access(m, f, v, s):
    lists.unlink(m, v[3], v[4], s)
    lists.push_back(m, v[3], v[4], T2, s)


@inline
def on_remove(m, f, v, s):
    owner = lists.owner(m, v[3], s)
    if owner in (T1, T2):
        lists.unlink(m, v[3], v[4], s)
    return owner in (B1, B2)


@inline
def _next_unpinned(m, v, s, incoming, pins):
    while s != lists.NONE and slots.held(m, v, s, incoming, pins):
        s = lists.after(m, v[3], v[4], s)
    return s


@inline
def victims(m, f, v, n, out, incoming):
    ls, nodes, g, pins = v[3], v[4], v[5], slots.any_pinned(m, v[0])
    p = f[v[6]]
    from_b2 = incoming >= 0 and incoming == m[g + LAST_IN] and m[g + LAST_FROM_B2] == 1
    t1 = lists.size(m, ls, nodes, T1)
    if incoming >= 0 and lists.owner(m, ls, incoming) == T1:
        t1 -= 1
    scan1, scan2 = lists.first(m, ls, nodes, T1), lists.first(m, ls, nodes, T2)
    got = 0
    while got < n:
        prefer_t1 = t1 > p or (from_b2 and t1 == p)
        s = lists.NONE
        for i in range(2):
            if prefer_t1 == (i == 0):
                s = _next_unpinned(m, v, scan1, incoming, pins)
                if s != lists.NONE:
                    scan1 = lists.after(m, ls, nodes, s)
                    lists.unlink(m, ls, nodes, s)
                    lists.push_back(m, ls, nodes, B1, s)
                    t1 -= 1
                    break
                scan1 = lists.NONE
            else:
                s = _next_unpinned(m, v, scan2, incoming, pins)
                if s != lists.NONE:
                    scan2 = lists.after(m, ls, nodes, s)
                    lists.unlink(m, ls, nodes, s)
                    lists.push_back(m, ls, nodes, B2, s)
                    break
                scan2 = lists.NONE
        if s == lists.NONE:
            break
        m[out + got] = s
        got += 1
    _trim_ghosts(m, v)
    return got


POLICY = register_eviction(EvictionPolicy(
    "arc", CODE, pool, words, init, region, on_insert, on_access, on_remove, victims))
