"""LFU: evict the key used least often since it became resident; ties go least recently used.

A key's count starts at 1 on insertion, +1 per access, and is forgotten on eviction (no
history outside the tier). Keys sit in one *bucket* list per count, each in recency order;
the buckets form a list in increasing count (the O(1) LFU of Shah, Mitra & Matani 2010)::

    buckets  [count 1: d e] -> [count 3: a] -> [count 4: b c]      victims(2) -> d, e

An access moves a key to the end of the next bucket (count + 1), creating it if missing; an
emptied bucket returns to a free pool. Region: key lists (one per bucket id), the bucket
order and free lists, and each bucket's count.

Region: (tier, refcount base, key lists, nodes, bucket lists, buckets, counts).
"""

from __future__ import annotations

from numba import njit, types

from kvplan.sim.core import lists
from kvplan.sim.core.layout import BLOCKS_AT, CAP, N_BLOCKS, PI, F, I, M, V, pinned_at, th
from kvplan.sim.policies.base import EvictionPolicy, register_eviction

CODE = 2
BY_COUNT, FREE = 0, 1
"""The two lists of bucket ids."""
Region = types.UniTuple(I, 7)


def _buckets(capacity_blocks: int) -> int:
    """Bucket ids: at most one per resident key (capacity + the one being inserted) + 1
    created by an access before its old bucket empties."""
    return capacity_blocks + 3


def words(n_blocks: int, capacity_blocks: int) -> tuple[int, int]:
    nb = _buckets(capacity_blocks)
    return lists.words(n_blocks, nb) + lists.words(nb, 2) + nb, 0


@njit(Region(M, I), cache=True)
def region(m, t):
    keys, n, nb = m[th(t) + PI], m[N_BLOCKS], m[th(t) + CAP] + 3
    buckets = keys + lists.NODE_WORDS * (n + nb)
    return t, m[BLOCKS_AT] + t, keys, n, buckets, nb, buckets + lists.NODE_WORDS * (nb + 2)


@njit(V(M, F, I), cache=True)
def init(m, f, t):
    v = region(m, t)
    lists.init(m, v[2], v[3], v[5])
    lists.init(m, v[4], v[5], 2)
    for b in range(v[5]):
        lists.push_back(m, v[4], v[5], FREE, b)


@njit(I(M, Region, I, I), cache=True)
def _bucket_after(m, v, prev, count):
    """A fresh bucket of ``count`` placed after bucket ``prev`` (-1: first)."""
    buckets, nb = v[4], v[5]
    b = lists.pop_front(m, buckets, nb, FREE)
    m[v[6] + b] = count
    if prev == lists.NONE:
        lists.push_front(m, buckets, nb, BY_COUNT, b)
    else:
        lists.insert_after(m, buckets, nb, prev, b)
    return b


@njit(V(M, Region, I), cache=True)
def _leave(m, v, key):
    """Take ``key`` out of its bucket; free the bucket if it empties."""
    b = lists.owner(m, v[2], key)
    lists.unlink(m, v[2], v[3], key)
    if lists.size(m, v[2], v[3], b) == 0:
        lists.unlink(m, v[4], v[5], b)
        lists.push_back(m, v[4], v[5], FREE, b)


@njit(V(M, F, Region, I), cache=True)
def on_insert(m, f, v, key):
    b = lists.first(m, v[4], v[5], BY_COUNT)
    if b == lists.NONE or m[v[6] + b] != 1:
        b = _bucket_after(m, v, lists.NONE, 1)
    lists.push_back(m, v[2], v[3], b, key)


@njit(V(M, F, Region, I), cache=True)
def on_access(m, f, v, key):
    b = lists.owner(m, v[2], key)
    nxt = lists.after(m, v[4], v[5], b)
    if nxt == lists.NONE or m[v[6] + nxt] != m[v[6] + b] + 1:
        nxt = _bucket_after(m, v, b, m[v[6] + b] + 1)
    _leave(m, v, key)
    lists.push_back(m, v[2], v[3], nxt, key)


@njit(V(M, F, Region, I), cache=True)
def on_remove(m, f, v, key):
    if lists.owner(m, v[2], key) != lists.NONE:
        _leave(m, v, key)


@njit(I(M, F, Region, I, I, I), cache=True)
def victims(m, f, v, n, out, incoming):
    """Lowest count first, oldest first within a count; nothing moves (on_remove unlinks)."""
    ref0, keys, nodes, buckets, nb = v[1], v[2], v[3], v[4], v[5]
    got = 0
    b = lists.first(m, buckets, nb, BY_COUNT)
    while got < n and b != lists.NONE:
        k = lists.first(m, keys, nodes, b)
        while got < n and k != lists.NONE:
            if not pinned_at(m, ref0, k):
                m[out + got] = k
                got += 1
            k = lists.after(m, keys, nodes, k)
        b = lists.after(m, buckets, nb, b)
    return got


POLICY = register_eviction(EvictionPolicy(
    "lfu", CODE, words, init, region, on_insert, on_access, on_remove, victims))
