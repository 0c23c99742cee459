"""S3-FIFO (Yang et al., SOSP'23): a small probationary FIFO, a main FIFO and a ghost FIFO.

New keys enter the small queue S (10% of capacity, at least one block); a key found in the
ghost queue G (recently evicted from S) enters the main queue M instead. Each key counts its
accesses, capped at 3. Eviction, one victim at a time, takes from S while S holds more than
its share, else from M:

- S, oldest first: accessed at least once -> moves to M with count 0; else it is the victim
  and its id is remembered in G (G holds at most as many ids as M's share of the capacity);
- M, oldest first: count > 0 -> count - 1 and reinserted at the new end; else the victim.

Pinned keys are skipped in place. The incoming key is already in S (or M) when victims are
chosen; S is measured without it, as the original (evict-then-insert) algorithm sees it, and
a new key sent to M ends up newer than the keys M reinserted while making room for it.
One scan of S per ``victims`` call resumes where its last victim was found (what it passed
is pinned, or gone from S), so pinned keys are passed once per call, not once per victim.

Region: one list set (S, M, G) over the block ids, then counts[n], and scratch for the
keys M spares in one pass. Region: (tier, refcount base, list set, nodes, counts, small share,
ghost size, spared scratch).
"""

from __future__ import annotations

from numba import njit, types

from kvplan.sim.core import lists
from kvplan.sim.core.layout import BLOCKS_AT, CAP, N_BLOCKS, PI, F, I, M, V, pinned_at, th
from kvplan.sim.policies.base import EvictionPolicy, register_eviction

CODE = 3
SMALL, MAIN, GHOST = 0, 1, 2
MAX_COUNT = 3
Region = types.UniTuple(I, 8)


def words(n_blocks: int, capacity_blocks: int) -> tuple[int, int]:
    return lists.words(n_blocks, 3) + n_blocks + capacity_blocks + 2, 0


@njit(Region(M, I), cache=True)
def region(m, t):
    ls, n, cap = m[th(t) + PI], m[N_BLOCKS], m[th(t) + CAP]
    counts = ls + lists.NODE_WORDS * (n + 3)
    share = max(1, cap // 10)
    return (t, m[BLOCKS_AT] + t, ls, n, counts, share, max(1, cap - share), counts + n)


@njit(V(M, F, I), cache=True)
def init(m, f, t):
    lists.init(m, m[th(t) + PI], m[N_BLOCKS], 3)


@njit(V(M, F, Region, I), cache=True)
def on_insert(m, f, v, key):
    ls, nodes = v[2], v[3]
    if lists.owner(m, ls, key) == GHOST:
        lists.unlink(m, ls, nodes, key)
        lists.push_back(m, ls, nodes, MAIN, key)
    else:
        lists.push_back(m, ls, nodes, SMALL, key)
    m[v[4] + key] = 0


@njit(V(M, F, Region, I), cache=True)
def on_access(m, f, v, key):
    m[v[4] + key] = min(m[v[4] + key] + 1, MAX_COUNT)


@njit(V(M, F, Region, I), cache=True)
def on_remove(m, f, v, key):
    if lists.owner(m, v[2], key) in (SMALL, MAIN):
        lists.unlink(m, v[2], v[3], key)


@njit(types.UniTuple(I, 2)(M, Region, I), cache=True)
def _from_small(m, v, cursor):
    """From ``cursor`` in S: the first unpinned key never accessed (remembered in G); keys
    accessed meanwhile move to M. Returns (victim or -1, where the scan resumes)."""
    ref0, ls, nodes, counts = v[1], v[2], v[3], v[4]
    k = cursor
    while k != lists.NONE:
        nxt = lists.after(m, ls, nodes, k)
        if pinned_at(m, ref0, k):
            k = nxt
            continue
        lists.unlink(m, ls, nodes, k)
        if m[counts + k] > 0:
            lists.push_back(m, ls, nodes, MAIN, k)
            m[counts + k] = 0
            k = nxt
            continue
        lists.push_back(m, ls, nodes, GHOST, k)
        if lists.size(m, ls, nodes, GHOST) > v[6]:
            lists.pop_front(m, ls, nodes, GHOST)
        return k, nxt
    return lists.NONE, lists.NONE


@njit(I(M, Region), cache=True)
def _from_main(m, v):
    """Up to MAX_COUNT + 1 passes over M: each pass spares (count - 1, to the new end) the
    unpinned keys with count > 0 before the first unpinned key with count 0, the victim."""
    ref0, ls, nodes, counts, spared = v[1], v[2], v[3], v[4], v[7]
    for _ in range(MAX_COUNT + 1):
        n_spared = 0
        victim = lists.NONE
        k = lists.first(m, ls, nodes, MAIN)
        while k != lists.NONE:
            if not pinned_at(m, ref0, k):
                if m[counts + k] > 0:
                    m[spared + n_spared] = k
                    n_spared += 1
                else:
                    victim = k
                    break
            k = lists.after(m, ls, nodes, k)
        for i in range(n_spared):
            s = m[spared + i]
            m[counts + s] -= 1
            lists.move_to_back(m, ls, nodes, s)
        if victim != lists.NONE:
            lists.unlink(m, ls, nodes, victim)
            return victim
    return lists.NONE


@njit(I(M, F, Region, I, I, I), cache=True)
def victims(m, f, v, n, out, incoming):
    ls, nodes = v[2], v[3]
    got = 0
    cursor = lists.first(m, ls, nodes, SMALL)
    while got < n:
        small = lists.size(m, ls, nodes, SMALL)
        if incoming >= 0 and lists.owner(m, ls, incoming) == SMALL:
            small -= 1
        if small >= v[5]:
            key, cursor = _from_small(m, v, cursor)
            if key == lists.NONE:
                key = _from_main(m, v)
        else:
            key = _from_main(m, v)
            if key == lists.NONE:
                key, cursor = _from_small(m, v, cursor)
        if key == lists.NONE:
            break
        m[out + got] = key
        got += 1
    if incoming >= 0 and lists.owner(m, ls, incoming) == MAIN:
        lists.move_to_back(m, ls, nodes, incoming)
    return got


POLICY = register_eviction(EvictionPolicy(
    "s3fifo", CODE, words, init, region, on_insert, on_access, on_remove, victims))
