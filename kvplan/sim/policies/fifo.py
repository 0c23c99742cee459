"""FIFO: evict in insertion order; accesses do not reorder, pinned keys keep their place.

Region: (tier, refcount base, list set, nodes).
"""

from __future__ import annotations

from numba import njit, types

from kvplan.sim.core import lists
from kvplan.sim.core.layout import BLOCKS_AT, N_BLOCKS, PI, F, I, M, V, pinned_at, th
from kvplan.sim.policies.base import EvictionPolicy, register_eviction

CODE = 1
ORDER = 0
Region = types.UniTuple(I, 4)


def words(n_blocks: int, capacity_blocks: int) -> tuple[int, int]:
    return lists.words(n_blocks, 1), 0


@njit(V(M, F, I), cache=True)
def init(m, f, t):
    lists.init(m, m[th(t) + PI], m[N_BLOCKS], 1)


@njit(Region(M, I), cache=True)
def region(m, t):
    return t, m[BLOCKS_AT] + t, m[th(t) + PI], m[N_BLOCKS]


@njit(V(M, F, Region, I), cache=True)
def on_insert(m, f, v, key):
    lists.push_back(m, v[2], v[3], ORDER, key)


@njit(V(M, F, Region, I), cache=True)
def on_access(m, f, v, key):
    return


@njit(V(M, F, Region, I), cache=True)
def on_remove(m, f, v, key):
    if lists.owner(m, v[2], key) != lists.NONE:
        lists.unlink(m, v[2], v[3], key)


@njit(I(M, F, Region, I, I, I), cache=True)
def victims(m, f, v, n, out, incoming):
    ref0, ls, nodes = v[1], v[2], v[3]
    got = 0
    k = lists.first(m, ls, nodes, ORDER)
    while got < n and k != lists.NONE:
        nxt = lists.after(m, ls, nodes, k)
        if not pinned_at(m, ref0, k):
            lists.unlink(m, ls, nodes, k)
            m[out + got] = k
            got += 1
        k = nxt
    return got


POLICY = register_eviction(EvictionPolicy(
    "fifo", CODE, words, init, region, on_insert, on_access, on_remove, victims))
