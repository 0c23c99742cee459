"""REFERENCE (tests only): one tier over a plain-Python policy (kvplan.sim.core.tier compiled).

A tier owns its blocks; its policy only orders them and names victims (docs/policies.md).
Pins are reference counts, as in vLLM v1's block pool: a block in use by a request has
refcount > 0 and is never a victim; a resident block with refcount 0 is *cached* and is
evicted lazily, only when room is needed::

    capacity 4:  [a*] [b ] [c*] [  ]      * = pinned (refcount > 0)
    used 3 + free 1 = capacity 4;  evictable = used - pinned = 1 (only b)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reference.policy_base import EvictionPolicy

TIER_NAMES = ("hbm", "dram", "ssd")
"""Tier levels, fastest first; a level's index is its position in a :class:`TierStack`."""


class Tier:
    """One storage level holding up to ``capacity_blocks`` dense block ids."""

    def __init__(self, name: str, capacity_blocks: int, policy: EvictionPolicy) -> None:
        self.name = name
        self.capacity_blocks = capacity_blocks
        self.policy = policy
        self.refs: dict[int, int] = {}
        """Resident block -> refcount (0 = cached, evictable). Read-only outside the tier:
        hot loops test ``key in tier.refs`` to skip a method call."""
        self._pinned: set[int] = set()

    def __contains__(self, key: int) -> bool:
        return key in self.refs

    @property
    def present(self) -> bool:
        """False for an absent tier (capacity 0): it never holds a block."""
        return self.capacity_blocks > 0

    @property
    def used_blocks(self) -> int:
        return len(self.refs)

    @property
    def free_blocks(self) -> int:
        return self.capacity_blocks - len(self.refs)

    @property
    def pinned_blocks(self) -> int:
        return len(self._pinned)

    @property
    def evictable_blocks(self) -> int:
        """Resident blocks nobody uses: what eviction can reclaim."""
        return len(self.refs) - len(self._pinned)

    def refcount(self, key: int) -> int:
        """Users of a resident block (0 = cached only); 0 for a block not resident."""
        return self.refs.get(key, 0)

    def can_insert(self, n: int = 1) -> bool:
        """True when ``n`` new blocks fit after evicting unpinned blocks (free + evictable)."""
        return n <= self.capacity_blocks - len(self._pinned)

    def touch(self, key: int, now: float) -> None:
        """A resident block was used again (policy ``on_access``)."""
        self.policy.on_access(key, now)

    def insert(self, key: int, now: float, pin: bool = False) -> list[int]:
        """Make ``key`` resident, evicting unpinned blocks if full; returns the evicted ids.

        The caller checks :meth:`can_insert` first; the key must not be resident. While room
        is made the new key is pinned, so it is never its own victim.
        """
        refs = self.refs
        if key in refs:
            raise ValueError(f"block {key} already resident in {self.name}")
        if len(self._pinned) >= self.capacity_blocks:
            raise ValueError(f"{self.name} full of pinned blocks")
        if len(refs) < self.capacity_blocks:
            refs[key] = int(pin)
            if pin:
                self._pinned.add(key)
            self.policy.on_insert(key, now)
            return []
        refs[key] = 1
        self._pinned.add(key)
        self.policy.on_insert(key, now)
        evicted = self.evict(len(refs) - self.capacity_blocks, incoming=key)
        if not pin:
            refs[key] = 0
            self._pinned.discard(key)
            self.policy.on_unpin(key)
        return evicted

    def insert_all(self, keys: Sequence[int], now: float, pin: bool = False) -> None:
        """:meth:`insert` each block (none resident), in order; one step when they all fit
        without evicting (the common case: callers make room first)."""
        refs, on_insert = self.refs, self.policy.on_insert
        if len(refs) + len(keys) > self.capacity_blocks:
            for key in keys:
                self.insert(key, now, pin)
            return
        for key in keys:
            if key in refs:
                raise ValueError(f"block {key} already resident in {self.name}")
            refs[key] = int(pin)
            on_insert(key, now)
        if pin:
            self._pinned.update(keys)

    def touch_all(self, keys: Iterable[int], now: float) -> None:
        """:meth:`touch` each resident block, in order."""
        on_access = self.policy.on_access
        for key in keys:
            on_access(key, now)

    def evict(self, n: int, incoming: int | None = None) -> list[int]:
        """Evict up to ``n`` unpinned blocks chosen by the policy; returns their ids."""
        if n <= 0:
            return []
        policy, refs = self.policy, self.refs
        victims = policy.victims(n, self._pinned, incoming)
        for key in victims:
            del refs[key]
            policy.on_remove(key)
        return victims

    def remove(self, key: int) -> None:
        """Drop a resident, unpinned block (e.g. an exclusive tier promoting it upward)."""
        if self.refs[key] > 0:
            raise ValueError(f"block {key} removed from {self.name} while pinned")
        del self.refs[key]
        self.policy.on_remove(key)

    def pin(self, key: int) -> None:
        """One more user of a resident block: it cannot be evicted until unpinned."""
        n = self.refs[key]
        self.refs[key] = n + 1
        if n == 0:
            self._pinned.add(key)
            self.policy.on_pin(key)

    def unpin(self, key: int) -> None:
        """One user fewer; at refcount 0 the block stays cached and becomes evictable."""
        left = self.refs[key] - 1
        self.refs[key] = left
        if left == 0:
            self._pinned.discard(key)
            self.policy.on_unpin(key)

    def pin_all(self, keys: Iterable[int]) -> None:
        """:meth:`pin` each block."""
        refs, on_pin = self.refs, self.policy.on_pin
        for key in keys:
            n = refs[key]
            refs[key] = n + 1
            if n == 0:
                self._pinned.add(key)
                on_pin(key)

    def unpin_all(self, keys: Iterable[int]) -> None:
        """:meth:`unpin` each block, in order."""
        refs, on_unpin = self.refs, self.policy.on_unpin
        for key in keys:
            left = refs[key] - 1
            refs[key] = left
            if left == 0:
                self._pinned.discard(key)
                on_unpin(key)
