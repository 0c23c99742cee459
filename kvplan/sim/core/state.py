"""Build the core's state arrays for a spec (the layout is in kvplan.sim.core.layout)."""

from __future__ import annotations

import numpy as np

from kvplan.hierarchy import Tier
from kvplan.sim.blocks import FutureUses
from kvplan.sim.core import layout as L
from kvplan.sim.core import moves
from kvplan.sim.core.spec import CoreSpec
from kvplan.sim.policies import dispatch, eviction_policy

MOVE_ROWS = 256
"""Moves one operation (and, in cache mode, the landings it causes) may queue at once."""


class _Words:
    """Hands out consecutive regions of a growing array."""

    def __init__(self, start: int) -> None:
        self.size = start

    def take(self, n: int) -> int:
        at, self.size = self.size, self.size + n
        return at


def _align(m: np.ndarray, at: int) -> int:
    """Words to skip after ``m[at]`` so that block records start on a cache line (a record
    is one line: a block's words cost one memory access)."""
    line = L.BLOCK_WORDS * m.itemsize
    return (-(m.ctypes.data + at * m.itemsize) % line) // m.itemsize


def build_state(spec: CoreSpec, n_blocks: int, max_request_blocks: int,
                future: FutureUses | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Empty tiers for ``n_blocks`` dense block ids; requests of at most
    ``max_request_blocks`` blocks. ``future``: each block's use times
    (kvplan.sim.blocks.BlockStream.future_uses), required when a tier runs an oracle.

    The block records start as zeros (never seen) and are not written here, so their pages
    are only touched as blocks are used; the tiers' pools and policy regions grow with the
    tiers' capacities."""
    policies = [eviction_policy(name) for name in spec.eviction]
    if future is None and any(p.is_oracle for p in policies):
        names = ", ".join(p.name for p in policies if p.is_oracle)
        raise ValueError(f"oracle eviction ({names}) needs the workload's future uses")
    caps = [int(c) for c in spec.capacity_blocks]
    scratch = max(caps[Tier.HBM], max_request_blocks) + 2
    mw, fw = _Words(L.HEADER), _Words(L.F_HEADER)
    blocks_at = mw.take(n_blocks * L.BLOCK_WORDS + L.BLOCK_WORDS)  # + room to align
    hdr = {}
    regions = []
    for p, cap in zip(policies, caps, strict=True):
        pool = p.slots(cap) if cap > 0 else 0
        times = len(future.distinct_times) if future is not None else 0
        ints, floats = p.words(cap, times) if cap > 0 else (0, 0)
        regions.append((pool, mw.take(pool), mw.take(pool), mw.take(pool), mw.take(ints),
                        fw.take(floats)))
    if future is not None:
        hdr[L.FUTURE_AT] = mw.take(n_blocks + 1)
        hdr[L.CURSOR_AT] = mw.take(n_blocks)
        hdr[L.FUTURE_R_AT] = mw.take(len(future.ranks))
        hdr[L.DISTINCT_AT] = fw.take(len(future.distinct_times))
    hdr[L.LEVELS_AT] = mw.take(max_request_blocks + 1)
    hdr[L.OUT_AT] = mw.take(max_request_blocks + 8)
    for name in (L.A_AT, L.B_AT, L.C_AT):
        hdr[name] = mw.take(scratch)
    hdr[L.FRESH_AT] = mw.take(caps[Tier.HBM] + 1)
    hdr[L.MOVES_AT] = mw.take(MOVE_ROWS * moves.MOVE_WORDS)
    hdr[L.MBLK_AT] = mw.take(8 * scratch + 64)
    m = np.zeros(mw.size, np.int64)
    f = np.zeros(fw.size, np.float64)
    for word, at in hdr.items():
        m[word] = at
    m[L.BLOCKS_AT] = blocks_at + _align(m, blocks_at)
    m[L.N_BLOCKS] = n_blocks
    m[L.INCLUSIVE] = int(spec.rules.inclusive)
    for t, (copy_on, min_hits) in enumerate(zip(spec.rules.copy_on, spec.rules.min_hits,
                                                strict=True), start=1):
        m[L.COPY_ON + t] = L.STORE if copy_on == "store" else L.EVICT
        m[L.MIN_HITS + t] = min_hits
    for t in range(3):
        m[L.BELOW + t] = next((lower for lower in range(t + 1, 3) if caps[lower] > 0), -1)
    m[L.COUNTS_HITS] = int(any(h > 0 for h in spec.rules.min_hits))
    m[L.LEVELS_CAP] = max_request_blocks + 1
    m[L.OUT_CAP] = max_request_blocks + 8
    m[L.SCRATCH_CAP] = scratch
    m[L.FRESH_CAP] = caps[Tier.HBM] + 1
    m[L.MOVES_CAP] = MOVE_ROWS
    m[L.MBLK_CAP] = 8 * scratch + 64
    m[L.NOW_HI] = -1
    if future is not None:
        m[m[L.FUTURE_AT]:m[L.FUTURE_AT] + n_blocks + 1] = future.offsets
        m[m[L.CURSOR_AT]:m[L.CURSOR_AT] + n_blocks] = future.offsets[:-1]
        m[m[L.FUTURE_R_AT]:m[L.FUTURE_R_AT] + len(future.ranks)] = future.ranks
        m[L.N_DISTINCT] = len(future.distinct_times)
        f[m[L.DISTINCT_AT]:m[L.DISTINCT_AT] + m[L.N_DISTINCT]] = future.distinct_times
    for t, (p, cap, (pool, keys, free, pins, ints, floats)) in enumerate(
            zip(policies, caps, regions, strict=True)):
        h = L.TIER_HDR + t * L.TIER_WORDS
        m[h + L.CAP], m[h + L.CODE], m[h + L.PI], m[h + L.PF] = cap, p.code, ints, floats
        m[h + L.POOL], m[h + L.KEYS_AT], m[h + L.FREE_AT], m[h + L.FREE_N] = \
            pool, keys, free, pool
        m[h + L.PINS_AT] = pins
        m[free:free + pool] = np.arange(pool - 1, -1, -1)
        if cap > 0:
            dispatch.init(m, f, t)
    return m, f
