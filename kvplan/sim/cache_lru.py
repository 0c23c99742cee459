"""Compiled timing-free replay for the all-LRU hierarchy (numba; the steps of kvplan.sim.cache).

Each tier's LRU order is a doubly linked list over dense block ids, in arrays; index ``n``
(one past the last block id) is the sentinel::

    nxt[n] -> oldest -> ... -> newest -> n        prv[n] = newest
    pinned blocks stay linked; eviction meets them at the old end and moves them to the new
    end, exactly what kvplan.sim.policies.lru does with a pinned key it skips.

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


def replay_lru(stream: BlockStream, spec: CacheSpec) -> CacheCounts:
    """Replay ``stream`` through LRU tiers of ``spec`` (compiled on first use, then cached)."""
    hits = np.zeros((stream.num_requests, 3), np.int64)
    links = np.zeros(4, np.int64)
    peak = np.zeros(3, np.int64)
    _replay(stream.ids, stream.offsets, stream.num_blocks,
            np.asarray(spec.capacity_blocks, np.int64), _WRITE_CODES[spec.write],
            spec.store_threshold, spec.inclusive, hits, links, peak)
    return CacheCounts(hits, links, peak)


@njit(cache=True, inline="always")
def _link_tail(prv, nxt, lv, b, s):
    last = prv[lv, s]
    nxt[lv, last] = b
    prv[lv, b] = last
    nxt[lv, b] = s
    prv[lv, s] = b


@njit(cache=True, inline="always")
def _unlink(prv, nxt, lv, b):
    p, q = prv[lv, b], nxt[lv, b]
    nxt[lv, p] = q
    prv[lv, q] = p


@njit(cache=True, inline="always")
def _touch(prv, nxt, lv, b, s):
    _unlink(prv, nxt, lv, b)
    _link_tail(prv, nxt, lv, b, s)


@njit(cache=True, inline="always")
def _unpin(ref, npinned, lv, b):
    ref[lv, b] -= 1
    if ref[lv, b] == 0:
        npinned[lv] -= 1


@njit(cache=True, inline="always")
def _insert(st, lv, b):
    """Insert ``b`` (room checked by the caller); returns the evicted block or -1."""
    res, ref, prv, nxt, used, npinned, cap, s = st
    res[lv, b] = True
    ref[lv, b] = 1
    npinned[lv] += 1
    _link_tail(prv, nxt, lv, b, s)
    used[lv] += 1
    victim = -1
    if used[lv] > cap[lv]:
        while True:
            h = nxt[lv, s]
            _unlink(prv, nxt, lv, h)
            if ref[lv, h] > 0:
                _link_tail(prv, nxt, lv, h, s)
                continue
            res[lv, h] = False
            used[lv] -= 1
            victim = h
            break
    _unpin(ref, npinned, lv, b)
    return victim


@njit(cache=True, inline="always")
def _place(st, lv, b, demote, links):
    """Insert ``b`` at ``lv``; victims cascade down while demotion applies. False if no room."""
    res, ref, prv, nxt, used, npinned, cap, s = st
    if cap[lv] - npinned[lv] < 1:
        return False
    while True:
        v = _insert(st, lv, b)
        if v < 0 or not demote:
            return True
        target = -1
        held = False
        for below in range(lv + 1, 3):
            if cap[below] > 0:
                held = held or res[below, v]
                if target < 0:
                    target = below
        if target < 0 or held or cap[target] - npinned[target] < 1:
            return True
        if lv == HBM:
            links[D2H] += 1
        if target == SSD:
            links[SSD_WRITE] += 1
        b, lv = v, target


@njit(cache=True, inline="always")
def _write_down(st, b, demote, links):
    res, cap = st[0], st[6]
    had_dram = res[DRAM, b]
    to_dram = cap[DRAM] > 0 and not had_dram and _place(st, DRAM, b, demote, links)
    to_ssd = cap[SSD] > 0 and not res[SSD, b] and _place(st, SSD, b, demote, links)
    if to_dram or (to_ssd and not had_dram):
        links[D2H] += 1
    if to_ssd:
        links[SSD_WRITE] += 1


@njit(cache=True, inline="always")
def _to_hbm(st, b, demote, links):
    res, prv, nxt, s = st[0], st[2], st[3], st[7]
    if res[HBM, b]:
        _touch(prv, nxt, HBM, b, s)
        return True
    return _place(st, HBM, b, demote, links)


@njit(cache=True)
def _replay(ids, offsets, n, cap, write, threshold, inclusive, hits, links, peak):
    res = np.zeros((3, n), np.bool_)
    ref = np.zeros((3, n), np.int32)
    prv = np.empty((3, n + 1), np.int64)
    nxt = np.empty((3, n + 1), np.int64)
    for lv in range(3):
        prv[lv, n] = n
        nxt[lv, n] = n
    used = np.zeros(3, np.int64)
    npinned = np.zeros(3, np.int64)
    st = (res, ref, prv, nxt, used, npinned, cap, n)
    demote = write == 2 or not inclusive
    prefix_hits = np.zeros(n, np.int64)
    levels = np.empty(np.max(np.diff(offsets)) if len(offsets) > 1 else 0, np.int64)
    for r in range(len(offsets) - 1):
        lo, hi = offsets[r], offsets[r + 1]
        p = 0
        for i in range(lo, hi):
            lv = -1
            for t in range(3):
                if res[t, ids[i]]:
                    lv = t
                    break
            if lv < 0:
                break
            levels[p] = lv
            p += 1
        for j in range(p):
            b, lv = ids[lo + j], levels[j]
            if ref[lv, b] == 0:
                npinned[lv] += 1
            ref[lv, b] += 1
        for i in range(hi - 1, lo - 1, -1):
            b = ids[i]
            j = i - lo
            if j < p:
                lv = levels[j]
                hits[r, lv] += 1
                if lv == HBM:
                    _touch(prv, nxt, HBM, b, n)
                else:
                    links[H2D] += 1
                    if lv == SSD:
                        links[SSD_READ] += 1
                    if inclusive:
                        _touch(prv, nxt, lv, b, n)
                        if lv == SSD and not res[DRAM, b]:
                            _place(st, DRAM, b, demote, links)
                    if _to_hbm(st, b, demote, links) and not inclusive:
                        _unpin(ref, npinned, lv, b)
                        _unlink(prv, nxt, lv, b)
                        res[lv, b] = False
                        used[lv] -= 1
                if write == 1:
                    prefix_hits[b] += 1
                    if prefix_hits[b] == threshold:
                        _write_down(st, b, demote, links)
            else:
                _to_hbm(st, b, demote, links)
                if write == 0:
                    _write_down(st, b, demote, links)
        for j in range(p):
            b, lv = ids[lo + j], levels[j]
            if res[lv, b] and ref[lv, b] > 0:
                _unpin(ref, npinned, lv, b)
        for lv in range(3):
            peak[lv] = max(peak[lv], used[lv])
