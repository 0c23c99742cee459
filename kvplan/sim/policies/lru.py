"""LRU: evict the least recently inserted-or-accessed key.

Pinned keys met while looking for victims move to the most-recent end: a pinned block is in
use, so it is as recent as any (vLLM v1 keeps in-use blocks out of its free queue and appends
them again when freed). Callers that release a request's blocks tail first (vLLM frees in
reverse order) get chain tails evicted before heads among equally recent blocks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from kvplan.sim.policies.base import EvictionPolicy, FutureUses, register_eviction


@register_eviction("lru")
class LRU(EvictionPolicy):
    """Least recently used first."""

    def __init__(self, capacity_blocks: int, future: FutureUses | None = None) -> None:
        super().__init__(capacity_blocks, future)
        self._order: OrderedDict[int, None] = OrderedDict()

    def on_insert(self, key: int, now: float) -> None:
        self._order[key] = None

    def on_access(self, key: int, now: float) -> None:
        self._order.move_to_end(key)

    def on_remove(self, key: int) -> None:
        self._order.pop(key, None)

    def victims(self, n: int, pinned: Container[int]) -> list[int]:
        out: list[int] = []
        skipped: list[int] = []
        for key in self._order:
            if len(out) == n:
                break
            (skipped if key in pinned else out).append(key)
        for key in skipped:
            self._order.move_to_end(key)
        return out
