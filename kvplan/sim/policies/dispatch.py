"""Compiled dispatch: a tier's policy code picks its policy's hooks, once per batch.

Each function reads the tier's code (``m[th(t) + CODE]``) and calls the generic batch
operation of kvplan.sim.core.tier with that policy's region and hooks; numba compiles one copy
of the operation per policy with the hooks inlined. Adding a policy adds one branch to each
function here (docs/policies.md).
"""

from __future__ import annotations

from kvplan.sim.core import tier
from kvplan.sim.core.layout import CODE, B, F, I, M, V, compiled, th
from kvplan.sim.policies.arc import CODE as ARC
from kvplan.sim.policies.belady import CODE as BELADY
from kvplan.sim.policies.fifo import CODE as FIFO
from kvplan.sim.policies.lfu import CODE as LFU
from kvplan.sim.policies.lru import CODE as LRU
from kvplan.sim.policies.s3fifo import CODE as S3FIFO


@compiled(V(M, F, I))
def init(m, f, t):
    code = m[th(t) + CODE]
    if code == LRU:
        tier.init(LRU, m, f, t)
    elif code == FIFO:
        tier.init(FIFO, m, f, t)
    elif code == LFU:
        tier.init(LFU, m, f, t)
    elif code == S3FIFO:
        tier.init(S3FIFO, m, f, t)
    elif code == ARC:
        tier.init(ARC, m, f, t)
    elif code == BELADY:
        tier.init(BELADY, m, f, t)


@compiled(V(M, F, I, M, B))
def touch_all(m, f, t, keys, backward):
    """kvplan.sim.core.tier.touch_all with tier ``t``'s policy."""
    code = m[th(t) + CODE]
    if code == LRU:
        tier.touch_all(LRU, m, f, t, keys, backward)
    elif code == FIFO:
        tier.touch_all(FIFO, m, f, t, keys, backward)
    elif code == LFU:
        tier.touch_all(LFU, m, f, t, keys, backward)
    elif code == S3FIFO:
        tier.touch_all(S3FIFO, m, f, t, keys, backward)
    elif code == ARC:
        tier.touch_all(ARC, m, f, t, keys, backward)
    elif code == BELADY:
        tier.touch_all(BELADY, m, f, t, keys, backward)


@compiled(I(M, F, I, M, I))
def fill_reserved(m, f, t, keys, new):
    """kvplan.sim.core.tier.fill_reserved with tier ``t``'s policy."""
    code = m[th(t) + CODE]
    if code == LRU:
        return tier.fill_reserved(LRU, m, f, t, keys, new)
    if code == FIFO:
        return tier.fill_reserved(FIFO, m, f, t, keys, new)
    if code == LFU:
        return tier.fill_reserved(LFU, m, f, t, keys, new)
    if code == S3FIFO:
        return tier.fill_reserved(S3FIFO, m, f, t, keys, new)
    if code == ARC:
        return tier.fill_reserved(ARC, m, f, t, keys, new)
    return tier.fill_reserved(BELADY, m, f, t, keys, new)


@compiled(I(M, F, I, M, I))
def place_all(m, f, t, keys, out):
    """kvplan.sim.core.tier.place_all with tier ``t``'s policy."""
    code = m[th(t) + CODE]
    if code == LRU:
        return tier.place_all(LRU, m, f, t, keys, out)
    if code == FIFO:
        return tier.place_all(FIFO, m, f, t, keys, out)
    if code == LFU:
        return tier.place_all(LFU, m, f, t, keys, out)
    if code == S3FIFO:
        return tier.place_all(S3FIFO, m, f, t, keys, out)
    if code == ARC:
        return tier.place_all(ARC, m, f, t, keys, out)
    return tier.place_all(BELADY, m, f, t, keys, out)


@compiled(I(M, F, I, I, I, I))
def evict(m, f, t, n, out, incoming):
    """kvplan.sim.core.tier.evict with tier ``t``'s policy."""
    code = m[th(t) + CODE]
    if code == LRU:
        return tier.evict(LRU, m, f, t, n, out, incoming)
    if code == FIFO:
        return tier.evict(FIFO, m, f, t, n, out, incoming)
    if code == LFU:
        return tier.evict(LFU, m, f, t, n, out, incoming)
    if code == S3FIFO:
        return tier.evict(S3FIFO, m, f, t, n, out, incoming)
    if code == ARC:
        return tier.evict(ARC, m, f, t, n, out, incoming)
    return tier.evict(BELADY, m, f, t, n, out, incoming)


@compiled(V(M, F, I, M))
def remove_all(m, f, t, keys):
    """kvplan.sim.core.tier.remove_all with tier ``t``'s policy."""
    code = m[th(t) + CODE]
    if code == LRU:
        tier.remove_all(LRU, m, f, t, keys)
    elif code == FIFO:
        tier.remove_all(FIFO, m, f, t, keys)
    elif code == LFU:
        tier.remove_all(LFU, m, f, t, keys)
    elif code == S3FIFO:
        tier.remove_all(S3FIFO, m, f, t, keys)
    elif code == ARC:
        tier.remove_all(ARC, m, f, t, keys)
    elif code == BELADY:
        tier.remove_all(BELADY, m, f, t, keys)
