"""Drive one compiled tier (kvplan.sim.core.tier) from Python with the reference Tier's API."""

from __future__ import annotations

import numpy as np

from kvplan.sim.core import layout as L
from kvplan.sim.core import rules, tier
from kvplan.sim.core.spec import CoreSpec
from kvplan.sim.core.state import build_state
from kvplan.sim.policies import dispatch

HBM = 0


def block_users(m: np.ndarray, t: int, b: int) -> int:
    """Users of block ``b`` in tier ``t`` (-1: not resident)."""
    w = int(m[m[L.BLOCKS_AT] + L.BLOCK_WORDS * b + t])
    return (w >> L.REF_SHIFT) - 1 if w >= L.REF1 else -1


class CompiledTier:
    """HBM of a one-tier core running ``policy``; keys are dense ids < ``n_blocks``.

    An unpinned insert into a full tier evicts one block (the policy sees the key as
    incoming), as DRAM and SSD landings do; a pinned insert needs room (HBM fills room
    reserved for it)."""

    def __init__(self, policy: str, capacity_blocks: int, n_blocks: int = 64,
                 future=None) -> None:
        self.capacity_blocks = capacity_blocks
        spec = CoreSpec((capacity_blocks, 0, 0), (policy, "lru", "lru"))
        self.m, self.f = build_state(spec, n_blocks, 1, future)
        self.out = int(self.m[L.A_AT])

    def _now(self, now: float) -> None:
        self.f[L.NOW] = max(self.f[L.NOW], now)

    def _keys(self, *keys: int) -> np.ndarray:
        return np.array(keys, np.int64)

    def __contains__(self, key: int) -> bool:
        return bool(tier.contains(self.m, HBM, key))

    def refcount(self, key: int) -> int:
        return max(block_users(self.m, HBM, key), 0)

    @property
    def used_blocks(self) -> int:
        return L.tier_word(self.m, HBM, L.USED)

    @property
    def pinned_blocks(self) -> int:
        return L.tier_word(self.m, HBM, L.PINNED)

    def can_insert(self, pin: bool = False) -> bool:
        if pin:
            return self.used_blocks < self.capacity_blocks
        return self.pinned_blocks < self.capacity_blocks

    def insert(self, key: int, now: float, pin: bool = False) -> list[int]:
        self._now(now)
        if pin:
            dispatch.fill_reserved(self.m, self.f, HBM, self._keys(key), self.out)
            return []
        got = dispatch.place_all(self.m, self.f, HBM, self._keys(key), self.out)
        return self.m[self.out:self.out + got].tolist()

    def touch(self, key: int, now: float) -> None:
        self._now(now)
        dispatch.touch_all(self.m, self.f, HBM, self._keys(key), False)

    def pin(self, key: int) -> None:
        """One more user (as a request's prefix lookup pins its HBM hits)."""
        keys = self._keys(key)
        rules.lookup(self.m, keys, 1)
        rules.pin_prefix(self.m, keys, 1)

    def unpin(self, key: int) -> None:
        rules.unpin_blocks(self.m, self._keys(key))

    def evict(self, n: int, now: float = 0.0) -> list[int]:
        self._now(now)
        got = dispatch.evict(self.m, self.f, HBM, n, self.out, -1)
        return self.m[self.out:self.out + got].tolist()

    def remove(self, key: int) -> None:
        dispatch.remove_all(self.m, self.f, HBM, self._keys(key))


def list_keys(tier: CompiledTier, region, j: int) -> list[int]:
    """Blocks in list ``j`` of a policy's list set, oldest first (``region``: the policy's
    region function: v[2] slot keys, v[3] the list set, v[4] its nodes)."""
    from kvplan.sim.core import lists

    v = region(tier.m, HBM)
    out, s = [], lists.first(tier.m, v[3], v[4], j)
    while s != lists.NONE:
        out.append(int(tier.m[v[2] + s]))
        s = lists.after(tier.m, v[3], v[4], s)
    return out
