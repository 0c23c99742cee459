"""LRU: evict the least recently inserted-or-accessed block.

One list of slots, oldest first. A pinned block met while looking for victims moves to the
recent end: it is in use, so it is as recent as any (vLLM v1 keeps in-use blocks out of its
free queue and appends them again when freed). Callers that release a request's blocks tail
first (as vLLM frees them) get chain tails evicted before heads among equally recent ones::

    order a [b*] c d     (* pinned)   victims(2): b passed and moved, a and c named
    ->    d b*

Region: one list set over the pool. Region tuple: (tier, refcount base, slot keys, list set,
pool).
"""

from __future__ import annotations

from kvplan.sim.core import lists, slots
from kvplan.sim.core.layout import BLOCKS_AT, KEYS_AT, PI, POOL, F, I, M, V, compiled, inline, th
from kvplan.sim.policies.base import EvictionPolicy, register_eviction

CODE = 0
ORDER = 0
"""The one list."""


def pool(capacity_blocks: int) -> int:
    return capacity_blocks + 1


def words(capacity_blocks: int, times: int = 0) -> tuple[int, int]:
    return lists.words(pool(capacity_blocks), 1), 0


@inline
def region(m, t):
    h = th(t)
    return t, m[BLOCKS_AT] + t, m[h + KEYS_AT], m[h + PI], m[h + POOL]


@compiled(V(M, F, I))
def init(m, f, t):
    v = region(m, t)
    lists.init(m, v[3], v[4], 1)


@inline
def on_insert(m, f, v, s):
    lists.push_back(m, v[3], v[4], ORDER, s)


@inline
def on_access(m, f, v, s):
    lists.move_to_back(m, v[3], v[4], s)


@inline
def on_remove(m, f, v, s):
    if lists.owner(m, v[3], s) != lists.NONE:
        lists.unlink(m, v[3], v[4], s)
    return False


@inline
def victims(m, f, v, n, out, incoming):
    """Oldest unpinned blocks; pinned ones passed on the way move to the recent end (each
    is visited at most once per call: moved ones land behind the walk). A run of pinned
    neighbours moves as one splice: when HBM is nearly all pinned, every search passes
    them all, and reading a flag per block is all it costs."""
    ls, nodes, pins = v[3], v[4], slots.any_pinned(m, v[0])
    got, steps, total = 0, 0, lists.size(m, ls, nodes, ORDER)
    s = lists.first(m, ls, nodes, ORDER)
    while got < n and steps < total:
        nxt = lists.after(m, ls, nodes, s)
        steps += 1
        if slots.held(m, v, s, incoming, pins):
            last = s
            while steps < total and slots.held(m, v, nxt, incoming, pins):
                last = nxt
                nxt = lists.after(m, ls, nodes, nxt)
                steps += 1
            lists.splice_to_back(m, ls, nodes, ORDER, s, last)
        else:
            lists.unlink(m, ls, nodes, s)
            m[out + got] = s
            got += 1
        s = nxt
    return got


POLICY = register_eviction(EvictionPolicy(
    "lru", CODE, pool, words, init, region, on_insert, on_access, on_remove, victims))
