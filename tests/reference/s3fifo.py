"""REFERENCE S3-FIFO (Yang et al., SOSP'23): a small probationary FIFO, a main FIFO and a ghost FIFO.

New keys enter the small queue S (10% of capacity, at least one block); a key found in the
ghost queue G (recently evicted from S) enters the main queue M instead. Each key counts its
accesses, capped at 3. Eviction, one victim at a time, takes from S while S holds more than
its share, else from M:

- S, oldest first: accessed at least once -> moves to M with count 0; else it is the victim
  and its id is remembered in G (G holds at most as many ids as M's share of the capacity);
- M, oldest first: count > 0 -> count - 1 and reinserted at the new end; else the victim.

Pinned keys are skipped in place. With the tier's insert-then-evict order the new key is
already in S (or M) when victims are chosen; S is measured without it, as the original
(evict-then-insert) algorithm sees it: evict from S when ``len(S without new key) >= share``,
and a new key sent to M ends up newer than the keys M reinserted while making room for it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from reference.policy_base import EvictionPolicy, FutureUses, register_eviction

MAX_COUNT = 3


@register_eviction("s3fifo")
class S3FIFO(EvictionPolicy):
    """Small + main + ghost FIFO queues with lazy promotion."""

    def __init__(self, capacity_blocks: int, future: FutureUses | None = None) -> None:
        super().__init__(capacity_blocks, future)
        self.small_share = max(1, capacity_blocks // 10)
        self.ghost_size = max(1, capacity_blocks - self.small_share)
        self._small: OrderedDict[int, None] = OrderedDict()
        self._main: OrderedDict[int, None] = OrderedDict()
        self._ghost: OrderedDict[int, None] = OrderedDict()
        self._count: dict[int, int] = {}

    def on_insert(self, key: int, now: float) -> None:
        if key in self._ghost:
            del self._ghost[key]
            self._main[key] = None
        else:
            self._small[key] = None
        self._count[key] = 0

    def on_access(self, key: int, now: float) -> None:
        self._count[key] = min(self._count[key] + 1, MAX_COUNT)

    def on_remove(self, key: int) -> None:
        self._small.pop(key, None)
        self._main.pop(key, None)
        self._count.pop(key, None)

    def victims(self, n: int, pinned: Container[int], incoming: int | None = None) -> list[int]:
        """One victim at a time, each scan of S from its oldest key."""
        out: list[int] = []
        while len(out) < n:
            if len(self._small) - (incoming in self._small) >= self.small_share:
                key = self._from_small(pinned)
                key = self._from_main(pinned) if key is None else key
            else:
                key = self._from_main(pinned)
                key = self._from_small(pinned) if key is None else key
            if key is None:
                break
            out.append(key)
        if incoming in self._main:
            self._main.move_to_end(incoming)
        return out

    def _from_small(self, pinned: Container[int]) -> int | None:
        """The oldest unpinned small key never accessed (to the ghost queue); accessed
        unpinned keys before it move to main."""
        promoted, victim = [], None
        for key in self._small:
            if key in pinned:
                continue
            if self._count[key] > 0:
                promoted.append(key)
                continue
            victim = key
            break
        for key in promoted:
            del self._small[key]
            self._main[key] = None
            self._count[key] = 0
        if victim is not None:
            del self._small[victim], self._count[victim]
            self._ghost[victim] = None
            if len(self._ghost) > self.ghost_size:
                self._ghost.popitem(last=False)
        return victim

    def _from_main(self, pinned: Container[int]) -> int | None:
        for _ in range(MAX_COUNT + 1):
            spared: list[int] = []
            victim = None
            for key in self._main:
                if key in pinned:
                    continue
                if self._count[key] > 0:
                    spared.append(key)
                    continue
                victim = key
                break
            for key in spared:
                self._count[key] -= 1
                self._main.move_to_end(key)
            if victim is not None:
                del self._main[victim], self._count[victim]
                return victim
        return None
