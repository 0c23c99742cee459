"""LFU: evict the block used least often since it became resident; ties go least recently used.

A block's count starts at 1 on insertion, +1 per access, and is forgotten on eviction (no
history outside the tier). Slots sit in one *bucket* list per count, each in recency order;
the buckets form a list in increasing count (the O(1) LFU of Shah, Mitra & Matani 2010)::

    buckets  [count 1: d e] -> [count 3: a] -> [count 4: b c]      victims(2) -> d, e

An access moves a slot to the end of the next bucket (count + 1), creating it if missing;
an emptied bucket returns to a free pool. Region: slot lists (one per bucket id), the bucket
order and free lists, and each bucket's count. Region tuple: (tier, refcount base, slot keys,
slot lists, pool, bucket lists, buckets, counts).
"""

from __future__ import annotations

from kvplan.sim.core import lists, slots
from kvplan.sim.core.layout import BLOCKS_AT, KEYS_AT, PI, POOL, F, I, M, V, compiled, inline, th
from kvplan.sim.policies.base import EvictionPolicy, register_eviction

CODE = 2
BY_COUNT, FREE = 0, 1
"""The two lists of bucket ids."""


def pool(capacity_blocks: int) -> int:
    return capacity_blocks + 1


def _buckets(n_slots: int) -> int:
    """Bucket ids: one per occupied slot + 1 created by an access before its old bucket
    empties."""
    return n_slots + 1


def words(capacity_blocks: int, times: int = 0) -> tuple[int, int]:
    n, nb = pool(capacity_blocks), _buckets(pool(capacity_blocks))
    return lists.words(n, nb) + lists.words(nb, 2) + nb, 0


@inline
def region(m, t):
    h = th(t)
    keys, n = m[h + PI], m[h + POOL]
    nb = n + 1
    buckets = keys + lists.words(n, nb)
    return (t, m[BLOCKS_AT] + t, m[h + KEYS_AT], keys, n, buckets, nb,
            buckets + lists.words(nb, 2))


@compiled(V(M, F, I))
def init(m, f, t):
    v = region(m, t)
    lists.init(m, v[3], v[4], v[6])
    lists.init(m, v[5], v[6], 2)
    for b in range(v[6]):
        lists.push_back(m, v[5], v[6], FREE, b)


@inline
def _bucket_after(m, v, prev, count):
    """A fresh bucket of ``count`` placed after bucket ``prev`` (-1: first)."""
    buckets, nb = v[5], v[6]
    b = lists.pop_front(m, buckets, nb, FREE)
    m[v[7] + b] = count
    if prev == lists.NONE:
        lists.push_front(m, buckets, nb, BY_COUNT, b)
    else:
        lists.insert_after(m, buckets, nb, prev, b)
    return b


@inline
def _leave(m, v, s):
    """Take slot ``s`` out of its bucket; free the bucket if it empties."""
    b = lists.owner(m, v[3], s)
    lists.unlink(m, v[3], v[4], s)
    if lists.size(m, v[3], v[4], b) == 0:
        lists.unlink(m, v[5], v[6], b)
        lists.push_back(m, v[5], v[6], FREE, b)


@inline
def on_insert(m, f, v, s):
    b = lists.first(m, v[5], v[6], BY_COUNT)
    if b == lists.NONE or m[v[7] + b] != 1:
        b = _bucket_after(m, v, lists.NONE, 1)
    lists.push_back(m, v[3], v[4], b, s)


@inline
def on_access(m, f, v, s):
    b = lists.owner(m, v[3], s)
    nxt = lists.after(m, v[5], v[6], b)
    if nxt == lists.NONE or m[v[7] + nxt] != m[v[7] + b] + 1:
        nxt = _bucket_after(m, v, b, m[v[7] + b] + 1)
    _leave(m, v, s)
    lists.push_back(m, v[3], v[4], nxt, s)


@inline
def on_remove(m, f, v, s):
    if lists.owner(m, v[3], s) != lists.NONE:
        _leave(m, v, s)
    return False


@inline
def victims(m, f, v, n, out, incoming):
    """Lowest count first, oldest first within a count; nothing moves (on_remove unlinks)."""
    keys, nodes, buckets, nb = v[3], v[4], v[5], v[6]
    pins = slots.any_pinned(m, v[0])
    got = 0
    b = lists.first(m, buckets, nb, BY_COUNT)
    while got < n and b != lists.NONE:
        s = lists.first(m, keys, nodes, b)
        while got < n and s != lists.NONE:
            if not slots.held(m, v, s, incoming, pins):
                m[out + got] = s
                got += 1
            s = lists.after(m, keys, nodes, s)
        b = lists.after(m, buckets, nb, b)
    return got


POLICY = register_eviction(EvictionPolicy(
    "lfu", CODE, pool, words, init, region, on_insert, on_access, on_remove, victims))
