"""LRU: evict the least recently inserted-or-accessed key.

Pinned keys met while looking for victims move to the most-recent end: a pinned block is in
use, so it is as recent as any (vLLM v1 keeps in-use blocks out of its free queue and appends
them again when freed). Callers that release a request's blocks tail first (vLLM frees in
reverse order) get chain tails evicted before heads among equally recent blocks.

Moving each passed pinned key costs a step per key per eviction, and a loaded HBM is mostly
pinned. So a search lifts the pinned keys it passes out of the order into one *group* that
takes their place at the recent end; a later search passes a group in one step (moving it to
the end again) unless one of its keys was unpinned meanwhile, and then walks into it. A
touched key leaves its group for the recent end. Read with every group expanded in place, the
order is exactly the one-key-at-a-time order::

    order a [b*] c d          (* pinned), victims(1): b passed, a evicted
    ->    c d G1=[b*]         victims(2) with b still pinned: c, d evicted, G1 passed whole
    ->    G1=[b*] ...
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container
from itertools import islice

from kvplan.sim.policies.base import EvictionPolicy, FutureUses, register_eviction


class _Group:
    """Pinned keys (and smaller groups) lifted out of the order together, oldest first."""

    __slots__ = ("gid", "items", "parent", "free")

    def __init__(self, gid: int) -> None:
        self.gid = gid
        """Negative id: its key in the order or in the parent group."""
        self.items: OrderedDict[int, _Group | None] = OrderedDict()
        self.parent: _Group | None = None
        self.free = 0
        """Keys unpinned since they were lifted, here and in nested groups."""


@register_eviction("lru")
class LRU(EvictionPolicy):
    """Least recently used first."""

    def __init__(self, capacity_blocks: int, future: FutureUses | None = None) -> None:
        super().__init__(capacity_blocks, future)
        self._order: OrderedDict[int, _Group | None] = OrderedDict()
        """Keys (-> None) and groups (negative id -> group), least recent first."""
        self._group_of: dict[int, _Group] = {}
        """Lifted key -> the group holding it."""
        self._free_lifted: set[int] = set()
        self._gid = 0

    def on_insert(self, key: int, now: float) -> None:
        self._order[key] = None

    def on_access(self, key: int, now: float) -> None:
        if key in self._group_of:
            self._ungroup(key)
            self._order[key] = None
        else:
            self._order.move_to_end(key)

    def on_remove(self, key: int) -> None:
        if key in self._group_of:
            self._ungroup(key)
        else:
            self._order.pop(key, None)

    def on_pin(self, key: int) -> None:
        if key in self._free_lifted:
            self._free_lifted.discard(key)
            self._add_free(self._group_of[key], -1)

    def on_unpin(self, key: int) -> None:
        group = self._group_of.get(key)
        if group is not None:
            self._free_lifted.add(key)
            self._add_free(group, 1)

    def victims(self, n: int, pinned: Container[int]) -> list[int]:
        if not pinned and not self._group_of:
            return list(islice(self._order, n))
        out: list[int] = []
        passed: list[tuple[_Group | None, int]] = []
        self._walk(None, n, pinned, out, passed)
        if passed:
            self._regroup(passed)
        return out

    def _walk(self, group: _Group | None, n: int, pinned: Container[int], out: list[int],
              passed: list[tuple[_Group | None, int]]) -> bool:
        """Search ``group`` (None: the order) oldest first; True once ``n`` victims are found.

        Unpinned keys become victims; pinned keys and groups with no unpinned key are passed.
        """
        items = self._order if group is None else group.items
        for key, sub in items.items():
            if sub is None:
                if key in pinned:
                    passed.append((group, key))
                else:
                    out.append(key)
                    if len(out) == n:
                        return True
            elif sub.free == 0:
                passed.append((group, key))
            elif self._walk(sub, n, pinned, out, passed):
                return True
        return False

    def _regroup(self, passed: list[tuple[_Group | None, int]]) -> None:
        """Move what a search passed, in its order, to the recent end as one group (the
        largest passed group absorbs the rest, which keeps nesting shallow)."""
        entries = []
        for parent, key in passed:
            items = self._order if parent is None else parent.items
            entries.append((key, items.pop(key)))
        for parent, _ in passed:
            if parent is not None:
                self._drop_if_empty(parent)
        sizes = [len(sub.items) if sub is not None else -1 for _, sub in entries]
        at = max(range(len(entries)), key=sizes.__getitem__)
        base = entries[at][1]
        if base is None:
            self._gid -= 1
            base, at = _Group(self._gid), -1
            self._join(base, entries)
        else:
            base.parent = None
            self._join(base, entries[at + 1:])
            self._join(base, reversed(entries[:at]), front=True)
        self._order[base.gid] = base

    def _join(self, base: _Group, entries, front: bool = False) -> None:
        items = base.items
        for key, sub in entries:
            items[key] = sub
            if front:
                items.move_to_end(key, last=False)
            if sub is None:
                self._group_of[key] = base
            else:
                sub.parent = base

    def _ungroup(self, key: int) -> None:
        group = self._group_of.pop(key)
        if key in self._free_lifted:
            self._free_lifted.discard(key)
            self._add_free(group, -1)
        del group.items[key]
        self._drop_if_empty(group)

    def _add_free(self, group: _Group | None, delta: int) -> None:
        while group is not None:
            group.free += delta
            group = group.parent

    def _drop_if_empty(self, group: _Group | None) -> None:
        while group is not None and not group.items:
            parent = group.parent
            del (self._order if parent is None else parent.items)[group.gid]
            group = parent
