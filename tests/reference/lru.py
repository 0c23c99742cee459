"""REFERENCE LRU: evict the least recently inserted-or-accessed key.

Pinned keys met while looking for victims move to the most-recent end, one at a time (they
are in use, so as recent as any; vLLM v1 appends in-use blocks to its free queue when freed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from reference.policy_base import EvictionPolicy, FutureUses, register_eviction


@register_eviction("lru")
class LRU(EvictionPolicy):
    """Least recently used first."""

    def __init__(self, capacity_blocks: int, future: FutureUses | None = None) -> None:
        super().__init__(capacity_blocks, future)
        self.order: OrderedDict[int, None] = OrderedDict()

    def on_insert(self, key: int, now: float) -> None:
        self.order[key] = None

    def on_access(self, key: int, now: float) -> None:
        self.order.move_to_end(key)

    def on_remove(self, key: int) -> None:
        self.order.pop(key, None)

    def victims(self, n: int, pinned: Container[int], incoming: int | None = None) -> list[int]:
        out, skipped = [], []
        for key in self.order:
            if len(out) == n:
                break
            (skipped if key in pinned else out).append(key)
        for key in skipped:
            self.order.move_to_end(key)
        return out
