"""REFERENCE Belady / MIN: evict the key whose next use is farthest in the future. An offline ORACLE.

It reads the workload's future (:class:`FutureUses`), so no real system can run it: its hit
ratio is an upper bound for the online policies, and every output labels it so. Among keys
with the same next use (e.g. never used again) the least recently touched goes first, so a
request's chain tails, touched first, leave before its head.

A max-heap keyed by next use holds one live entry per key; an entry whose use time has passed
without the key being touched (the use was served elsewhere) is recomputed when met.
"""

from __future__ import annotations

import heapq
from collections.abc import Container

from reference.policy_base import EvictionPolicy, FutureUses, register_eviction


@register_eviction("belady")
class Belady(EvictionPolicy):
    """Farthest next use first (offline oracle: an upper bound)."""

    is_oracle = True

    def __init__(self, capacity_blocks: int, future: FutureUses | None = None) -> None:
        super().__init__(capacity_blocks, future)
        assert future is not None
        self._future = future
        self._heap: list[tuple[float, int, int]] = []
        self._live: dict[int, tuple[float, int]] = {}
        """key -> its live heap entry (negated next use, sequence number)."""
        self._seq = 0
        self._now = float("-inf")

    def _push(self, key: int) -> None:
        self._seq += 1
        entry = (-self._future.next_use(key, self._now), self._seq)
        self._live[key] = entry
        heapq.heappush(self._heap, (*entry, key))
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [(*e, k) for k, e in self._live.items()]
            heapq.heapify(self._heap)

    def on_insert(self, key: int, now: float) -> None:
        self._now = max(self._now, now)
        self._push(key)

    def on_access(self, key: int, now: float) -> None:
        self._now = max(self._now, now)
        self._push(key)

    def on_remove(self, key: int) -> None:
        self._live.pop(key, None)

    def victims(self, n: int, pinned: Container[int], incoming: int | None = None) -> list[int]:
        out: list[int] = []
        held: list[tuple[float, int, int]] = []
        while self._heap and len(out) < n:
            entry = heapq.heappop(self._heap)
            neg_next, seq, key = entry
            if self._live.get(key) != (neg_next, seq):
                continue
            if -neg_next < self._now:
                self._push(key)
            elif key in pinned:
                held.append(entry)
            else:
                del self._live[key]
                out.append(key)
        for entry in held:
            heapq.heappush(self._heap, entry)
        return out
