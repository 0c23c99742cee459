"""One tier's residency: refcounts, pins, inserts and evictions (the policy orders, the tier owns).

Pins are reference counts, as in vLLM v1's block pool: a block in use has refcount > 0 and is
never a victim; a resident block with refcount 0 is *cached* and is evicted lazily, only when
room is needed::

    capacity 4:  [a*] [b ] [c*] [  ]      * = pinned (refcount > 0)
    used 3 + free 1 = capacity 4;  evictable = used - pinned = 1 (only b)

The batch operations (``touch_all``, ``fill_reserved``, ``place_all``, ``evict``,
``remove_all``) are written once here and compiled once per policy: their first argument is
a policy's code as a compile-time constant (kvplan.sim.policies.dispatch passes it), and
numba builds a copy calling that policy's hooks directly, so they inline. A batch reads the
tier's counters and the policy's region (its offsets) once and keeps them in registers.
An absent tier (capacity 0) holds nothing.
"""

from __future__ import annotations

from numba import njit, types
from numba.extending import overload

from kvplan.sim.core.layout import (
    BLOCK_WORDS,
    BLOCKS_AT,
    CAP,
    HBM,
    PEAK,
    PINNED,
    UNSEEN,
    USED,
    B,
    I,
    M,
    V,
    ref_at,
    th,
)
from kvplan.sim.policies.base import EvictionPolicy, policy_of_code

ABSENT = -1
"""Refcount word of a block not in the tier."""


@njit(B(M, I), cache=True)
def present(m, t):
    return m[th(t) + CAP] > 0


@njit(B(M, I, I), cache=True)
def contains(m, t, b):
    return m[ref_at(m, t, b)] != ABSENT


@njit(V(M, I, I), cache=True)
def pin(m, t, b):
    """One more user of a resident block: it cannot be evicted until unpinned."""
    r = ref_at(m, t, b)
    if m[r] == 0:
        m[th(t) + PINNED] += 1
    m[r] += 1


@njit(V(M, I, I), cache=True)
def unpin(m, t, b):
    """One user fewer; at refcount 0 the block stays cached and becomes evictable."""
    r = ref_at(m, t, b)
    m[r] -= 1
    if m[r] == 0:
        m[th(t) + PINNED] -= 1


def _policy(code) -> EvictionPolicy | None:
    """The policy of a literal code argument (None while numba types it as a plain int)."""
    return policy_of_code(code.literal_value) if isinstance(code, types.IntegerLiteral) else None


def init(code, m, f, t):
    """Lay out tier ``t``'s region for policy ``code`` (compiled only)."""
    raise NotImplementedError


@overload(init, prefer_literal=True)
def _init(code, m, f, t):
    p = _policy(code)
    if p is None:
        return None
    policy_init = p.init

    def impl(code, m, f, t):
        policy_init(m, f, t)

    return impl


def touch_all(code, m, f, t, keys, backward):
    """Resident blocks were used, in order (``backward``: last first). A block the policy
    has not been told of yet (filled into reserved room) is inserted into its order now,
    as a block vLLM frees joins its free queue; any other is accessed."""
    raise NotImplementedError


@overload(touch_all, prefer_literal=True)
def _touch_all(code, m, f, t, keys, backward):
    p = _policy(code)
    if p is None:
        return None
    region, on_insert, on_access = p.region, p.on_insert, p.on_access

    def impl(code, m, f, t, keys, backward):
        v = region(m, t)
        rec = m[BLOCKS_AT] + UNSEEN
        n = len(keys)
        for i in range(n):
            b = keys[n - 1 - i] if backward else keys[i]
            u = rec + BLOCK_WORDS * b
            if t == HBM and m[u] == 1:
                m[u] = 0
                on_insert(m, f, v, b)
            else:
                on_access(m, f, v, b)

    return impl


def evict(code, m, f, t, n, out, incoming):
    """Evict up to ``n`` unpinned blocks chosen by the policy into m[out:]; returns how many.
    ``incoming``: the block being inserted (-1: room made ahead of inserts)."""
    raise NotImplementedError


def _evict_with(region, victims, on_remove):
    """The eviction loop of a policy's hooks (shared by ``evict`` and ``place_all``)."""

    @njit
    def evict_n(m, f, t, v, n, out, incoming):
        got = victims(m, f, v, n, out, incoming)
        ref0 = m[BLOCKS_AT] + t
        for i in range(got):
            b = m[out + i]
            m[ref0 + BLOCK_WORDS * b] = ABSENT
            on_remove(m, f, v, b)
        return got

    return evict_n


@overload(evict, prefer_literal=True)
def _evict(code, m, f, t, n, out, incoming):
    p = _policy(code)
    if p is None:
        return None
    region, evict_n = p.region, _evict_with(p.region, p.victims, p.on_remove)

    def impl(code, m, f, t, n, out, incoming):
        if n <= 0:
            return 0
        got = evict_n(m, f, t, region(m, t), n, out, incoming)
        m[th(t) + USED] -= got
        return got

    return impl


def fill_reserved(code, m, f, t, keys, new):
    """Blocks fill HBM room reserved for them (computed or loaded): a resident one is pinned
    once more; the others become resident, pinned, written to m[new:], and *unseen*: the
    policy is told of them when the request that filled them releases them (``touch_all``),
    as vLLM's blocks join the free queue when freed, so their first use is counted once.
    Returns how many were new."""
    raise NotImplementedError


@overload(fill_reserved, prefer_literal=True)
def _fill_reserved(code, m, f, t, keys, new):
    if _policy(code) is None:
        return None

    def impl(code, m, f, t, keys, new):
        h, ref0 = th(t), m[BLOCKS_AT] + t
        unseen = m[BLOCKS_AT] + UNSEEN
        used, pinned, n = m[h + USED], m[h + PINNED], 0
        for b in keys:
            r = ref0 + BLOCK_WORDS * b
            if m[r] == ABSENT:
                m[r] = 1
                m[unseen + BLOCK_WORDS * b] = 1
                used += 1
                pinned += 1
                m[new + n] = b
                n += 1
            else:
                pinned += m[r] == 0
                m[r] += 1
        m[h + USED], m[h + PINNED] = used, pinned
        return n

    return impl


def place_all(code, m, f, t, keys, out):
    """Blocks arrive in a tier that has no reservations (DRAM, SSD): a resident one is
    touched; any other is inserted, a full tier evicting one block for it (the policy sees
    it as incoming, pinned while room is made). The victims go to m[out:]; returns how many."""
    raise NotImplementedError


@overload(place_all, prefer_literal=True)
def _place_all(code, m, f, t, keys, out):
    p = _policy(code)
    if p is None:
        return None
    region, on_insert, on_access = p.region, p.on_insert, p.on_access
    evict_n = _evict_with(p.region, p.victims, p.on_remove)

    def impl(code, m, f, t, keys, out):
        v = region(m, t)
        h, ref0 = th(t), m[BLOCKS_AT] + t
        cap, used, peak, n = m[h + CAP], m[h + USED], m[h + PEAK], 0
        for b in keys:
            r = ref0 + BLOCK_WORDS * b
            if m[r] != ABSENT:
                on_access(m, f, v, b)
                continue
            m[r] = 1
            used += 1
            on_insert(m, f, v, b)
            if used > cap:
                got = evict_n(m, f, t, v, 1, out + n, b)
                used -= got
                n += got
            m[r] = 0
            peak = max(peak, used)
        m[h + USED], m[h + PEAK] = used, peak
        return n

    return impl


def remove_all(code, m, f, t, keys):
    """Drop the resident, unpinned ones of ``keys`` (an exclusive tier promoting them)."""
    raise NotImplementedError


@overload(remove_all, prefer_literal=True)
def _remove_all(code, m, f, t, keys):
    p = _policy(code)
    if p is None:
        return None
    region, on_remove = p.region, p.on_remove

    def impl(code, m, f, t, keys):
        v = region(m, t)
        ref0 = m[BLOCKS_AT] + t
        gone = 0
        for b in keys:
            r = ref0 + BLOCK_WORDS * b
            if m[r] == 0:
                m[r] = ABSENT
                gone += 1
                on_remove(m, f, v, b)
        m[th(t) + USED] -= gone

    return impl
