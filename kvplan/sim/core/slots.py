"""A tier's slot pool: where its resident blocks (and its policy's ghost entries) live.

Policies order *slots*, not block ids, so their structures grow with the tier's capacity and
stay cache-resident however many distinct blocks the workload has. ``KEYS[slot]`` is the
block in a slot; a block's tier word names its slot (kvplan.sim.core.layout). Free slots
form a stack::

    pool 4, blocks 7 and 9 in slots 0 and 1:  KEYS [7, 9, -, -]  FREE [3, 2]  (2 free)
    take_slot -> 2;   free_slot(0) -> FREE [3, 0]
"""

from __future__ import annotations

from kvplan.sim.core.layout import (
    BLOCK_WORDS,
    BLOCKS_AT,
    FREE_AT,
    FREE_N,
    KEYS_AT,
    PINNED,
    PINS_AT,
    inline,
    resident,
    th,
)


@inline
def take_slot(m, t):
    """A free slot of tier ``t`` (the pool is sized so one is always free)."""
    h = th(t)
    if m[h + FREE_N] == 0:
        raise ValueError("tier slot pool exhausted")
    m[h + FREE_N] -= 1
    return m[m[h + FREE_AT] + m[h + FREE_N]]


@inline
def free_slot(m, t, s):
    h = th(t)
    m[m[h + FREE_AT] + m[h + FREE_N]] = s
    m[h + FREE_N] += 1


@inline
def forget(m, t, s):
    """A policy dropped its ghost entry in slot ``s``: the block loses it, the slot is free
    (unless the block became resident meanwhile and owns the slot)."""
    r = m[BLOCKS_AT] + BLOCK_WORDS * m[m[th(t) + KEYS_AT] + s] + t
    if not resident(m[r]):
        m[r] = 0
        free_slot(m, t, s)


@inline
def any_pinned(m, t):
    """Tier ``t`` has pinned blocks (DRAM and SSD never do): when not, a victim search need
    not read each candidate's record, only skip the slot being filled."""
    return m[th(t) + PINNED] > 0


@inline
def held(m, v, s, incoming, pins):
    """Slot ``s`` may not be a victim: it is being filled, or (``pins``: the tier has pins)
    its block is in use (the slot's pin flag, kvplan.sim.core.layout.PINS_AT). ``v``: a
    policy's region tuple (v[0] is the tier)."""
    return s == incoming or (pins and m[m[th(v[0]) + PINS_AT] + s] != 0)
