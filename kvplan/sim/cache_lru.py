"""Compiled timing-free replay for the all-LRU hierarchy (numba; the steps of kvplan.sim.cache).

Each tier's LRU order is a doubly linked list over dense block ids; block id ``n`` (one past
the last) is the sentinel: NEXT of the sentinel is the oldest block, PREV the newest. Pinned
blocks stay linked; eviction meets them at the old end and moves them to the new end, exactly
what kvplan.sim.policies.lru does with a pinned key it skips.

All mutable state lives in ONE int64 array ``m`` (helpers that take several arrays pay numba's
reference counting on every call: 3-4x slower on this loop). Layout, for n blocks::

    m[0 : 3n]                 ref[tier, block]: -1 absent, 0 cached, k > 0 pinned by k users
    m[3n : 3n + 6(n+1)]       links[tier, block, PREV/NEXT]
    then 3 x 3                counts[tier, USED/PINNED/CAP]
    then 4                    blocks over each link, LINK_NAMES order

It must give the same counts as the class-based replay with LRU everywhere
(tests/test_cache_equivalence.py checks it on random streams).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kvplan.sim.blocks import BlockStream
from kvplan.sim.cache import CacheCounts, CacheSpec

_WRITE_CODES = {"write-through": 0, "write-through-selective": 1, "write-back": 2}
HBM, DRAM, SSD = 0, 1, 2
SSD_READ, H2D, D2H, SSD_WRITE = 0, 1, 2, 3
PREV, NEXT = 0, 1
USED, PINNED, CAP = 0, 1, 2
ABSENT = -1


def replay_lru(stream: BlockStream, spec: CacheSpec) -> CacheCounts:
    """Replay ``stream`` through LRU tiers of ``spec`` (compiled on first use, then cached)."""
    hits = np.zeros((stream.num_requests, 3), np.int64)
    peak = np.zeros(3, np.int64)
    links = _replay(stream.ids, stream.offsets, stream.num_blocks,
                    np.asarray(spec.capacity_blocks, np.int64), _WRITE_CODES[spec.write],
                    spec.store_threshold, spec.inclusive, hits, peak)
    return CacheCounts(hits, links, peak)


@njit(cache=True, inline="always")
def _ref(n, lv, b):
    return lv * n + b


@njit(cache=True, inline="always")
def _lk(n, lv, b, side):
    return 3 * n + (lv * (n + 1) + b) * 2 + side


@njit(cache=True, inline="always")
def _cnt(n, lv, what):
    return 9 * n + 6 + lv * 3 + what


@njit(cache=True, inline="always")
def _link(n, which):
    return 9 * n + 15 + which


@njit(cache=True, inline="always")
def _link_tail(m, n, lv, b):
    last = m[_lk(n, lv, n, PREV)]
    m[_lk(n, lv, last, NEXT)] = b
    m[_lk(n, lv, b, PREV)] = last
    m[_lk(n, lv, b, NEXT)] = n
    m[_lk(n, lv, n, PREV)] = b


@njit(cache=True, inline="always")
def _unlink(m, n, lv, b):
    p, q = m[_lk(n, lv, b, PREV)], m[_lk(n, lv, b, NEXT)]
    m[_lk(n, lv, p, NEXT)] = q
    m[_lk(n, lv, q, PREV)] = p


@njit(cache=True, inline="always")
def _touch(m, n, lv, b):
    _unlink(m, n, lv, b)
    _link_tail(m, n, lv, b)


@njit(cache=True, inline="always")
def _pin(m, n, lv, b):
    if m[_ref(n, lv, b)] == 0:
        m[_cnt(n, lv, PINNED)] += 1
    m[_ref(n, lv, b)] += 1


@njit(cache=True, inline="always")
def _unpin(m, n, lv, b):
    m[_ref(n, lv, b)] -= 1
    if m[_ref(n, lv, b)] == 0:
        m[_cnt(n, lv, PINNED)] -= 1


@njit(cache=True, inline="always")
def _remove(m, n, lv, b):
    _unlink(m, n, lv, b)
    m[_ref(n, lv, b)] = ABSENT
    m[_cnt(n, lv, USED)] -= 1


@njit(cache=True, inline="always")
def _has_room(m, n, lv):
    return m[_cnt(n, lv, CAP)] - m[_cnt(n, lv, PINNED)] >= 1


@njit(cache=True, inline="always")
def _insert(m, n, lv, b):
    """Insert ``b`` (room checked by the caller); returns the evicted block or -1."""
    m[_ref(n, lv, b)] = 0
    _pin(m, n, lv, b)
    _link_tail(m, n, lv, b)
    m[_cnt(n, lv, USED)] += 1
    victim = -1
    if m[_cnt(n, lv, USED)] > m[_cnt(n, lv, CAP)]:
        while True:
            h = m[_lk(n, lv, n, NEXT)]
            if m[_ref(n, lv, h)] > 0:
                _touch(m, n, lv, h)
                continue
            _remove(m, n, lv, h)
            victim = h
            break
    _unpin(m, n, lv, b)
    return victim


@njit(cache=True, inline="always")
def _place(m, n, lv, b, demote):
    """Insert ``b`` at ``lv``; victims cascade down while demotion applies. False if no room."""
    if not _has_room(m, n, lv):
        return False
    while True:
        v = _insert(m, n, lv, b)
        if v < 0 or not demote:
            return True
        target = -1
        held = False
        for below in range(lv + 1, 3):
            if m[_cnt(n, below, CAP)] > 0:
                held = held or m[_ref(n, below, v)] != ABSENT
                if target < 0:
                    target = below
        if target < 0 or held or not _has_room(m, n, target):
            return True
        if lv == HBM:
            m[_link(n, D2H)] += 1
        if target == SSD:
            m[_link(n, SSD_WRITE)] += 1
        b, lv = v, target


@njit(cache=True, inline="always")
def _write_down(m, n, b, demote):
    """Copy a block into every present lower tier lacking it."""
    had_dram = m[_ref(n, DRAM, b)] != ABSENT
    to_dram = (m[_cnt(n, DRAM, CAP)] > 0 and not had_dram
               and _place(m, n, DRAM, b, demote))
    to_ssd = (m[_cnt(n, SSD, CAP)] > 0 and m[_ref(n, SSD, b)] == ABSENT
              and _place(m, n, SSD, b, demote))
    if to_dram or (to_ssd and not had_dram):
        m[_link(n, D2H)] += 1
    if to_ssd:
        m[_link(n, SSD_WRITE)] += 1


@njit(cache=True, inline="always")
def _to_hbm(m, n, b, demote):
    if m[_ref(n, HBM, b)] != ABSENT:
        _touch(m, n, HBM, b)
        return True
    return _place(m, n, HBM, b, demote)


@njit(cache=True, inline="always")
def _lookup_and_pin(m, n, ids, lo, hi, levels):
    """Fill ``levels`` with the stored prefix's tiers, pinning each block; returns its length."""
    p = 0
    for i in range(lo, hi):
        lv = -1
        for t in range(3):
            if m[_ref(n, t, ids[i])] != ABSENT:
                lv = t
                break
        if lv < 0:
            break
        levels[p] = lv
        _pin(m, n, lv, ids[i])
        p += 1
    return p


@njit(cache=True, inline="always")
def _use_hit(m, n, b, lv, inclusive, demote):
    if lv == HBM:
        _touch(m, n, HBM, b)
        return
    m[_link(n, H2D)] += 1
    if lv == SSD:
        m[_link(n, SSD_READ)] += 1
    if inclusive:
        _touch(m, n, lv, b)
        if lv == SSD and m[_ref(n, DRAM, b)] == ABSENT:
            _place(m, n, DRAM, b, demote)
    if _to_hbm(m, n, b, demote) and not inclusive:
        _unpin(m, n, lv, b)
        _remove(m, n, lv, b)


@njit(cache=True)
def _replay(ids, offsets, n, cap, write, threshold, inclusive, hits, peak):
    m = np.empty(9 * n + 19, np.int64)
    m[: 3 * n] = ABSENT
    m[9 * n + 6:] = 0
    for lv in range(3):
        m[_lk(n, lv, n, PREV)] = n
        m[_lk(n, lv, n, NEXT)] = n
        m[_cnt(n, lv, CAP)] = cap[lv]
    demote = write == 2 or not inclusive
    prefix_hits = np.zeros(n, np.int64)
    levels = np.empty(np.max(np.diff(offsets)) if len(offsets) > 1 else 0, np.int64)
    for r in range(len(offsets) - 1):
        lo, hi = offsets[r], offsets[r + 1]
        p = _lookup_and_pin(m, n, ids, lo, hi, levels)
        for i in range(hi - 1, lo - 1, -1):
            b = ids[i]
            if i - lo < p:
                lv = levels[i - lo]
                hits[r, lv] += 1
                _use_hit(m, n, b, lv, inclusive, demote)
                if write == 1:
                    prefix_hits[b] += 1
                    if prefix_hits[b] == threshold:
                        _write_down(m, n, b, demote)
            else:
                _to_hbm(m, n, b, demote)
                if write == 0:
                    _write_down(m, n, b, demote)
        for j in range(p):
            b, lv = ids[lo + j], levels[j]
            if m[_ref(n, lv, b)] > 0:
                _unpin(m, n, lv, b)
        for lv in range(3):
            peak[lv] = max(peak[lv], m[_cnt(n, lv, USED)])
    return m[_link(n, 0): _link(n, 4)].copy()
