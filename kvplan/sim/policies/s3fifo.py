"""S3-FIFO (Yang et al., SOSP'23): a small probationary FIFO, a main FIFO and a ghost FIFO.

New blocks enter the small queue S (10% of capacity, at least one block); a block found in
the ghost queue G (recently evicted from S) enters the main queue M instead. Each counts its
accesses, capped at 3. Eviction, one victim at a time, takes from S while S holds more than
its share, else from M:

- S, oldest first: accessed at least once -> moves to M with count 0; else it is the victim
  and remembered in G (G holds at most as many entries as M's share of the capacity);
- M, oldest first: count > 0 -> count - 1 and reinserted at the new end; else the victim.

Pinned blocks are skipped in place. The incoming block is already in S (or M) when victims
are chosen; S is measured without it, as the original (evict-then-insert) algorithm sees it,
and a new block sent to M ends up newer than the blocks M reinserted while making room for
it. One scan of S per ``victims`` call resumes where its last victim was found (what it
passed is pinned, or gone from S), so pinned blocks are passed once per call, not once per
victim. A ghost entry keeps its slot (kvplan.sim.core.slots) until G drops it.

Region: one list set (S, M, G) over the pool, counts per slot, scratch for the slots M spares
in one pass. Region tuple: (tier, refcount base, slot keys, list set, pool, counts, small
share, ghost size, spared scratch).
"""

from __future__ import annotations

from kvplan.sim.core import lists, slots
from kvplan.sim.core.layout import (
    BLOCKS_AT,
    CAP,
    KEYS_AT,
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

CODE = 3
SMALL, MAIN, GHOST = 0, 1, 2
MAX_COUNT = 3


def _shares(capacity_blocks: int) -> tuple[int, int]:
    """(small share, ghost size). Example: capacity 100 -> (10, 90)."""
    share = max(1, capacity_blocks // 10)
    return share, max(1, capacity_blocks - share)


def pool(capacity_blocks: int) -> int:
    """Resident blocks (+ the one being inserted) and ghost entries (+ the one being added)."""
    return capacity_blocks + _shares(capacity_blocks)[1] + 3


def words(capacity_blocks: int, times: int = 0) -> tuple[int, int]:
    n = pool(capacity_blocks)
    return lists.words(n, 3) + 2 * n, 0


@inline
def region(m, t):
    h = th(t)
    ls, n, cap = m[h + PI], m[h + POOL], m[h + CAP]
    counts = ls + lists.words(n, 3)
    share = max(1, cap // 10)
    return (t, m[BLOCKS_AT] + t, m[h + KEYS_AT], ls, n, counts, share, max(1, cap - share),
            counts + n)


@compiled(V(M, F, I))
def init(m, f, t):
    v = region(m, t)
    lists.init(m, v[3], v[4], 3)


@inline
def on_insert(m, f, v, s):
    ls, nodes = v[3], v[4]
    if lists.owner(m, ls, s) == GHOST:
        lists.unlink(m, ls, nodes, s)
        lists.push_back(m, ls, nodes, MAIN, s)
    else:
        lists.push_back(m, ls, nodes, SMALL, s)
    m[v[5] + s] = 0


@inline
def on_access(m, f, v, s):
    m[v[5] + s] = min(m[v[5] + s] + 1, MAX_COUNT)


@inline
def on_remove(m, f, v, s):
    owner = lists.owner(m, v[3], s)
    if owner in (SMALL, MAIN):
        lists.unlink(m, v[3], v[4], s)
    return owner == GHOST


@inline
def _from_small(m, v, cursor, incoming, pins):
    """From ``cursor`` in S: the first unpinned block never accessed (remembered in G);
    those accessed meanwhile move to M. Returns (victim or -1, where the scan resumes)."""
    ls, nodes, counts = v[3], v[4], v[5]
    s = cursor
    while s != lists.NONE:
        nxt = lists.after(m, ls, nodes, s)
        if slots.held(m, v, s, incoming, pins):
            s = nxt
            continue
        lists.unlink(m, ls, nodes, s)
        if m[counts + s] > 0:
            lists.push_back(m, ls, nodes, MAIN, s)
            m[counts + s] = 0
            s = nxt
            continue
        lists.push_back(m, ls, nodes, GHOST, s)
        if lists.size(m, ls, nodes, GHOST) > v[7]:
            slots.forget(m, v[0], lists.pop_front(m, ls, nodes, GHOST))
        return s, nxt
    return lists.NONE, lists.NONE


@inline
def _from_main(m, v, incoming, pins):
    """Up to MAX_COUNT + 1 passes over M: each pass spares (count - 1, to the new end) the
    unpinned blocks with count > 0 before the first unpinned one with count 0, the victim."""
    ls, nodes, counts, spared = v[3], v[4], v[5], v[8]
    for _ in range(MAX_COUNT + 1):
        n_spared = 0
        victim = lists.NONE
        s = lists.first(m, ls, nodes, MAIN)
        while s != lists.NONE:
            if not slots.held(m, v, s, incoming, pins):
                if m[counts + s] > 0:
                    m[spared + n_spared] = s
                    n_spared += 1
                else:
                    victim = s
                    break
            s = lists.after(m, ls, nodes, s)
        for i in range(n_spared):
            k = m[spared + i]
            m[counts + k] -= 1
            lists.move_to_back(m, ls, nodes, k)
        if victim != lists.NONE:
            lists.unlink(m, ls, nodes, victim)
            return victim
    return lists.NONE


@inline
def victims(m, f, v, n, out, incoming):
    ls, nodes, pins = v[3], v[4], slots.any_pinned(m, v[0])
    got = 0
    cursor = lists.first(m, ls, nodes, SMALL)
    while got < n:
        small = lists.size(m, ls, nodes, SMALL)
        if incoming >= 0 and lists.owner(m, ls, incoming) == SMALL:
            small -= 1
        if small >= v[6]:
            s, cursor = _from_small(m, v, cursor, incoming, pins)
            if s == lists.NONE:
                s = _from_main(m, v, incoming, pins)
        else:
            s = _from_main(m, v, incoming, pins)
            if s == lists.NONE:
                s, cursor = _from_small(m, v, cursor, incoming, pins)
        if s == lists.NONE:
            break
        m[out + got] = s
        got += 1
    if incoming >= 0 and lists.owner(m, ls, incoming) == MAIN:
        lists.move_to_back(m, ls, nodes, incoming)
    return got


POLICY = register_eviction(EvictionPolicy(
    "s3fifo", CODE, pool, words, init, region, on_insert, on_access, on_remove, victims))
