"""REFERENCE LFU: evict the key used least often since it became resident; ties go least recently used.

A key's count starts at 1 on insertion, +1 per access, and is forgotten on eviction (no
history outside the tier). Keys sit in one bucket per count, each bucket in recency order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from reference.policy_base import EvictionPolicy, FutureUses, register_eviction


@register_eviction("lfu")
class LFU(EvictionPolicy):
    """Least frequently used first, least recently used among equals."""

    def __init__(self, capacity_blocks: int, future: FutureUses | None = None) -> None:
        super().__init__(capacity_blocks, future)
        self._count: dict[int, int] = {}
        self._buckets: dict[int, OrderedDict[int, None]] = {}

    def _place(self, key: int, count: int) -> None:
        self._count[key] = count
        self._buckets.setdefault(count, OrderedDict())[key] = None

    def _unplace(self, key: int) -> int:
        count = self._count.pop(key)
        bucket = self._buckets[count]
        del bucket[key]
        if not bucket:
            del self._buckets[count]
        return count

    def on_insert(self, key: int, now: float) -> None:
        self._place(key, 1)

    def on_access(self, key: int, now: float) -> None:
        self._place(key, self._unplace(key) + 1)

    def on_remove(self, key: int) -> None:
        if key in self._count:
            self._unplace(key)

    def victims(self, n: int, pinned: Container[int], incoming: int | None = None) -> list[int]:
        out: list[int] = []
        for count in sorted(self._buckets):
            for key in self._buckets[count]:
                if len(out) == n:
                    return out
                if key not in pinned:
                    out.append(key)
        return out
