"""REFERENCE FIFO: evict in insertion order; accesses do not reorder (pinned keys keep their place)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from reference.policy_base import EvictionPolicy, FutureUses, register_eviction


@register_eviction("fifo")
class FIFO(EvictionPolicy):
    """First in, first out."""

    def __init__(self, capacity_blocks: int, future: FutureUses | None = None) -> None:
        super().__init__(capacity_blocks, future)
        self._order: OrderedDict[int, None] = OrderedDict()

    def on_insert(self, key: int, now: float) -> None:
        self._order[key] = None

    def on_access(self, key: int, now: float) -> None:
        pass

    def on_remove(self, key: int) -> None:
        self._order.pop(key, None)

    def victims(self, n: int, pinned: Container[int], incoming: int | None = None) -> list[int]:
        out: list[int] = []
        for key in self._order:
            if len(out) == n:
                break
            if key not in pinned:
                out.append(key)
        return out
