"""FIFO: evict in insertion order; accesses do not reorder, pinned blocks keep their place.

Region: one list set over the pool. Region tuple: (tier, refcount base, slot keys, list set,
pool).
"""

from __future__ import annotations

from numba import types

from kvplan.sim.core import lists, slots
from kvplan.sim.core.layout import BLOCKS_AT, KEYS_AT, PI, POOL, F, I, M, V, compiled, inline, th
from kvplan.sim.policies.base import EvictionPolicy, register_eviction

CODE = 1
ORDER = 0
Region = types.UniTuple(I, 5)


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
    return


@inline
def on_remove(m, f, v, s):
    if lists.owner(m, v[3], s) != lists.NONE:
        lists.unlink(m, v[3], v[4], s)
    return False


@inline
def victims(m, f, v, n, out, incoming):
    ls, nodes, pins = v[3], v[4], slots.any_pinned(m, v[0])
    got = 0
    s = lists.first(m, ls, nodes, ORDER)
    while got < n and s != lists.NONE:
        nxt = lists.after(m, ls, nodes, s)
        if not slots.held(m, v, s, incoming, pins):
            lists.unlink(m, ls, nodes, s)
            m[out + got] = s
            got += 1
        s = nxt
    return got


POLICY = register_eviction(EvictionPolicy(
    "fifo", CODE, pool, words, init, region, on_insert, on_access, on_remove, victims))
