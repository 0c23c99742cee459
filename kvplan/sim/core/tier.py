"""One tier's residency: refcounts, pins, inserts and evictions (the policy orders, the tier owns).

Pins are reference counts, as in vLLM v1's block pool: a block in use has refcount > 0 and is
never a victim; a resident block with refcount 0 is *cached* and is evicted lazily, only when
room is needed::

    capacity 4:  [a*] [b ] [c*] [  ]      * = pinned (refcount > 0)
    used 3 + free 1 = capacity 4;  evictable = used - pinned = 1 (only b)

A resident block occupies a slot of the tier's pool (kvplan.sim.core.slots); the policy's
hooks take slots. The batch operations (``touch_all``, ``fill_reserved``, ``place_all``,
``evict``, ``remove_all``) are written once here and compiled once per policy: their first
argument is a policy's code as a compile-time constant (kvplan.sim.policies.dispatch passes
it), so numba builds a copy calling that policy's hooks directly and inlines them. A batch
reads the tier's counters and the policy's region (its offsets) once and keeps them in
registers. An absent tier (capacity 0) holds nothing.
"""

from __future__ import annotations

from numba import types
from numba.extending import overload

from kvplan.sim.core import slots
from kvplan.sim.core.layout import (
    BLOCK_WORDS,
    BLOCKS_AT,
    CAP,
    HBM,
    KEYS_AT,
    NO_RC,
    PEAK,
    PINNED,
    REF1,
    UNSEEN,
    USED,
    inline,
    ref_at,
    resident,
    set_pinned,
    slot_of,
    th,
)
from kvplan.sim.policies.base import EvictionPolicy, policy_of_code


@inline
def present(m, t):
    return m[th(t) + CAP] > 0


@inline
def contains(m, t, b):
    return resident(m[ref_at(m, t, b)])


def _policy(code) -> EvictionPolicy | None:
    """The policy of a literal code argument (None while numba types it as a plain int)."""
    return policy_of_code(code.literal_value) if isinstance(code, types.IntegerLiteral) else None


@inline
def _seat(m, t, b, r, users):
    """Make block ``b`` (its tier word at ``r``) resident in tier ``t`` with ``users``
    users, in its ghost entry's slot if the policy kept one, else in a free slot; returns
    the slot."""
    s = slot_of(m[r])
    if s < 0:
        s = slots.take_slot(m, t)
        m[m[th(t) + KEYS_AT] + s] = b
    m[r] = (users + 1) * REF1 + s + 1
    set_pinned(m, t, m[r])
    return s


def init(code, m, f, t):
    """Lay out tier ``t``'s policy region for policy ``code`` (compiled only)."""
    raise NotImplementedError


@overload(init, prefer_literal=True, jit_options=NO_RC)
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
    has not been told of yet (filled into reserved room) joins its order now, as a block
    vLLM frees joins its free queue; any other is accessed."""
    raise NotImplementedError


@overload(touch_all, prefer_literal=True, jit_options=NO_RC)
def _touch_all(code, m, f, t, keys, backward):
    p = _policy(code)
    if p is None:
        return None
    region, on_insert, on_access = p.region, p.on_insert, p.on_access

    def impl(code, m, f, t, keys, backward):
        v = region(m, t)
        rec = m[BLOCKS_AT]
        n = len(keys)
        for i in range(n):
            r = rec + BLOCK_WORDS * (keys[n - 1 - i] if backward else keys[i])
            if t == HBM and m[r + UNSEEN] == 1:
                m[r + UNSEEN] = 0
                on_insert(m, f, v, slot_of(m[r + t]))
            else:
                on_access(m, f, v, slot_of(m[r + t]))

    return impl


def evict(code, m, f, t, n, out, incoming):
    """Evict up to ``n`` unpinned blocks chosen by the policy into m[out:]; returns how many.
    ``incoming``: the slot being filled (-1: room made ahead of inserts)."""
    raise NotImplementedError


def _evict_with(victims, on_remove):
    """The eviction loop of a policy's hooks (shared by ``evict`` and ``place_all``): the
    policy names slots; each victim's block leaves (keeping its slot if the policy keeps a
    ghost entry there), and m[out:] gets the blocks."""

    @inline
    def evict_n(m, f, t, v, n, out, incoming):
        got = victims(m, f, v, n, out, incoming)
        rec, keys = m[BLOCKS_AT] + t, m[th(t) + KEYS_AT]
        for i in range(got):
            s = m[out + i]
            b = m[keys + s]
            m[out + i] = b
            if on_remove(m, f, v, s):
                m[rec + BLOCK_WORDS * b] = s + 1
            else:
                m[rec + BLOCK_WORDS * b] = 0
                slots.free_slot(m, t, s)
        return got

    return evict_n


@overload(evict, prefer_literal=True, jit_options=NO_RC)
def _evict(code, m, f, t, n, out, incoming):
    p = _policy(code)
    if p is None:
        return None
    region, evict_n = p.region, _evict_with(p.victims, p.on_remove)

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


@overload(fill_reserved, prefer_literal=True, jit_options=NO_RC)
def _fill_reserved(code, m, f, t, keys, new):
    if _policy(code) is None:
        return None

    def impl(code, m, f, t, keys, new):
        h, rec = th(t), m[BLOCKS_AT]
        used, pinned, n = m[h + USED], m[h + PINNED], 0
        for b in keys:
            r = rec + BLOCK_WORDS * b + t
            if resident(m[r]):
                pinned += m[r] < 2 * REF1
                m[r] += REF1
                set_pinned(m, t, m[r])
                continue
            _seat(m, t, b, r, 1)
            m[rec + BLOCK_WORDS * b + UNSEEN] = 1
            used += 1
            pinned += 1
            m[new + n] = b
            n += 1
        m[h + USED], m[h + PINNED] = used, pinned
        return n

    return impl


def place_all(code, m, f, t, keys, out):
    """Blocks arrive in a tier that has no reservations (DRAM, SSD): a resident one is
    touched; any other is inserted, a full tier evicting one block for it (the policy sees
    its slot as incoming, pinned while room is made). The victims go to m[out:]; returns
    how many."""
    raise NotImplementedError


@overload(place_all, prefer_literal=True, jit_options=NO_RC)
def _place_all(code, m, f, t, keys, out):
    p = _policy(code)
    if p is None:
        return None
    region, on_insert, on_access = p.region, p.on_insert, p.on_access
    evict_n = _evict_with(p.victims, p.on_remove)

    def impl(code, m, f, t, keys, out):
        v = region(m, t)
        h, rec = th(t), m[BLOCKS_AT] + t
        cap, used, peak, n = m[h + CAP], m[h + USED], m[h + PEAK], 0
        for b in keys:
            r = rec + BLOCK_WORDS * b
            if resident(m[r]):
                on_access(m, f, v, slot_of(m[r]))
                continue
            s = _seat(m, t, b, r, 1)
            used += 1
            on_insert(m, f, v, s)
            if used > cap:
                got = evict_n(m, f, t, v, 1, out + n, s)
                used -= got
                n += got
            m[r] -= REF1
            set_pinned(m, t, m[r])
            peak = max(peak, used)
        m[h + USED], m[h + PEAK] = used, peak
        return n

    return impl


def remove_all(code, m, f, t, keys):
    """Drop the resident, unpinned ones of ``keys`` (an exclusive tier promoting them)."""
    raise NotImplementedError


@overload(remove_all, prefer_literal=True, jit_options=NO_RC)
def _remove_all(code, m, f, t, keys):
    p = _policy(code)
    if p is None:
        return None
    region, on_remove = p.region, p.on_remove

    def impl(code, m, f, t, keys):
        v = region(m, t)
        rec = m[BLOCKS_AT] + t
        gone = 0
        for b in keys:
            r = rec + BLOCK_WORDS * b
            w = m[r]
            if resident(w) and w < 2 * REF1:
                s = slot_of(w)
                gone += 1
                if on_remove(m, f, v, s):
                    m[r] = s + 1
                else:
                    m[r] = 0
                    slots.free_slot(m, t, s)
        m[th(t) + USED] -= gone

    return impl
