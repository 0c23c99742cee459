"""REFERENCE ARC (Megiddo & Modha, FAST'03): adaptive split between recency (T1) and frequency (T2).

T1 holds keys seen once, T2 keys seen at least twice, both in recency order; ghost lists B1
and B2 remember ids recently evicted from each. A new key found in B1 grows the target size
``p`` of T1 by max(1, |B2|/|B1|) and enters T2; one found in B2 shrinks ``p`` by
max(1, |B1|/|B2|) and enters T2; any other new key enters T1. A victim (REPLACE) is the LRU of
T1 when |T1| > p, or |T1| == p and the incoming key came from B2; else the LRU of T2 (the other
list if the chosen one has only pinned keys). Victims join B1 or B2; ghosts are trimmed so
|T1| + |B1| <= c and all four lists hold at most 2c ids.

The tier inserts before choosing victims, so REPLACE counts T1 without the incoming key, as
the original (evict-then-insert) algorithm sees it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from reference.policy_base import EvictionPolicy, FutureUses, register_eviction


@register_eviction("arc")
class ARC(EvictionPolicy):
    """Adaptive Replacement Cache."""

    def __init__(self, capacity_blocks: int, future: FutureUses | None = None) -> None:
        super().__init__(capacity_blocks, future)
        self.p = 0.0
        self._t1: OrderedDict[int, None] = OrderedDict()
        self._t2: OrderedDict[int, None] = OrderedDict()
        self._b1: OrderedDict[int, None] = OrderedDict()
        self._b2: OrderedDict[int, None] = OrderedDict()
        self._last_in: int | None = None
        self._last_from_b2 = False

    def on_insert(self, key: int, now: float) -> None:
        c = self.capacity_blocks
        self._last_in, self._last_from_b2 = key, key in self._b2
        if key in self._b1:
            self.p = min(c, self.p + max(1.0, len(self._b2) / len(self._b1)))
            del self._b1[key]
            self._t2[key] = None
        elif key in self._b2:
            self.p = max(0.0, self.p - max(1.0, len(self._b1) / len(self._b2)))
            del self._b2[key]
            self._t2[key] = None
        else:
            self._t1[key] = None
        self._trim_ghosts()

    def on_access(self, key: int, now: float) -> None:
        if key in self._t1:
            del self._t1[key]
        self._t2[key] = None
        self._t2.move_to_end(key)

    def on_remove(self, key: int) -> None:
        self._t1.pop(key, None)
        self._t2.pop(key, None)

    def victims(self, n: int, pinned: Container[int], incoming: int | None = None) -> list[int]:
        """REPLACE ``n`` times, each searching its list from the oldest key."""
        out: list[int] = []
        t1 = len(self._t1) - (incoming in self._t1)
        from_b2 = incoming is not None and incoming == self._last_in and self._last_from_b2
        while len(out) < n:
            lists = ((self._t1, self._b1), (self._t2, self._b2))
            for live, ghost in (lists if self._prefer_t1(t1, from_b2) else lists[::-1]):
                key = next((k for k in live if k not in pinned), None)
                if key is not None:
                    del live[key]
                    ghost[key] = None
                    out.append(key)
                    t1 -= live is self._t1
                    break
            else:
                break
        self._trim_ghosts()
        return out

    def _prefer_t1(self, t1: int, from_b2: bool) -> bool:
        """REPLACE's choice with ``t1`` keys in T1 (the incoming key not counted)."""
        return t1 > self.p or (from_b2 and t1 == self.p)

    def _trim_ghosts(self) -> None:
        c, b1, b2 = self.capacity_blocks, self._b1, self._b2
        for _ in range(min(len(b1), len(self._t1) + len(b1) - c)):
            b1.popitem(last=False)
        for _ in range(len(self._t1) + len(self._t2) + len(b1) + len(b2) - 2 * c):
            (b2 or b1).popitem(last=False)
