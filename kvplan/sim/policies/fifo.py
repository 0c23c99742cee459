"""FIFO: evict in insertion order; accesses do not reorder, pinned blocks keep their place.

FIFO keeps LRU's layout (kvplan.sim.policies.lru: one list of slots, oldest first, over the
pool) and differs in two hooks: an access leaves the order alone, and the victim search
skips pinned blocks in place instead of moving them to the recent end::

    order a [b*] c d     (* pinned)   victims(2): a and c named, b stays
    ->    b* d

Region tuple: (tier, refcount base, slot keys, list set, pool), as LRU's.
"""

from __future__ import annotations

from kvplan.sim.core import lists, slots
from kvplan.sim.core.layout import inline
from kvplan.sim.policies.base import EvictionPolicy, register_eviction
from kvplan.sim.policies.lru import ORDER, init, on_insert, on_remove, pool, region, words

CODE = 1


@inline
def on_access(m, f, v, s):
    return


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
