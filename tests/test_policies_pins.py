"""Policies that skip pinned keys cheaply vs plain references that walk past them every time.

The references are the straightforward versions: LRU with one ordered dict moving pinned keys
one by one, ARC and S3-FIFO searching from the oldest key for every victim. The policies keep
in-use keys out of their eviction order through ``on_pin`` / ``on_unpin`` (LRU) or resume one
search per ``victims`` call (ARC, S3-FIFO). Random streams of insert / touch / pin / unpin / evict / remove
through a :class:`Tier` must name the same victims in the same order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container

from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.sim.policies import make_eviction
from kvplan.sim.policies.arc import ARC
from kvplan.sim.policies.base import EvictionPolicy
from kvplan.sim.policies.s3fifo import S3FIFO
from kvplan.sim.tiers import Tier


class RefLRU(EvictionPolicy):
    """LRU moving each pinned key it passes to the recent end, one at a time."""

    def __init__(self, capacity_blocks: int, future=None) -> None:
        super().__init__(capacity_blocks, future)
        self.order: OrderedDict[int, None] = OrderedDict()

    def on_insert(self, key: int, now: float) -> None:
        self.order[key] = None

    def on_access(self, key: int, now: float) -> None:
        self.order.move_to_end(key)

    def on_remove(self, key: int) -> None:
        self.order.pop(key, None)

    def victims(self, n: int, pinned: Container[int]) -> list[int]:
        out, skipped = [], []
        for key in self.order:
            if len(out) == n:
                break
            (skipped if key in pinned else out).append(key)
        for key in skipped:
            self.order.move_to_end(key)
        return out


class RefARC(ARC):
    """ARC searching each list from its oldest key for every victim."""

    def victims(self, n: int, pinned: Container[int]) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            t1 = len(self._t1) - (self._incoming in self._t1)
            prefer_t1 = t1 > self.p or (self._incoming_from_b2 and t1 == self.p)
            lists = ((self._t1, self._b1), (self._t2, self._b2))
            for live, ghost in (lists if prefer_t1 else lists[::-1]):
                key = next((k for k in live if k not in pinned), None)
                if key is not None:
                    del live[key]
                    ghost[key] = None
                    out.append(key)
                    break
            else:
                break
        self._trim_ghosts()
        return out


class RefS3FIFO(S3FIFO):
    """S3-FIFO scanning the small queue from its oldest key for every victim."""

    def victims(self, n: int, pinned: Container[int]) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            if len(self._small) - (self._incoming in self._small) >= self.small_share:
                key = self._small_victim(pinned)
                key = self._from_main(pinned) if key is None else key
            else:
                key = self._from_main(pinned)
                key = self._small_victim(pinned) if key is None else key
            if key is None:
                break
            out.append(key)
        if self._incoming in self._main:
            self._main.move_to_end(self._incoming)
        self._incoming = None
        return out

    def _small_victim(self, pinned: Container[int]) -> int | None:
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


REFERENCES = {"lru": RefLRU, "arc": RefARC, "s3fifo": RefS3FIFO}

OPS = st.lists(st.tuples(st.sampled_from(["ins", "ins_pinned", "pin", "unpin", "touch", "evict",
                                          "remove"]), st.integers(0, 11)), max_size=150)


def replay(tier: Tier, ops: list[tuple[str, int]]) -> list[list[int]]:
    """Apply ``ops`` (skipping those invalid in the current state); the victims of each."""
    out = []
    for op, k in ops:
        resident = k in tier
        if op in ("ins", "ins_pinned") and not resident and tier.can_insert():
            out.append(tier.insert(k, 0.0, pin=op == "ins_pinned"))
        elif op == "pin" and resident:
            tier.pin(k)
        elif op == "unpin" and tier.refcount(k) > 0:
            tier.unpin(k)
        elif op == "touch" and resident:
            tier.touch(k, 0.0)
        elif op == "evict":
            out.append(tier.evict(k % 4))
        elif op == "remove" and resident and tier.refcount(k) == 0:
            tier.remove(k)
    return out


@settings(max_examples=300, deadline=None)
@given(OPS, st.integers(1, 6), st.sampled_from(sorted(REFERENCES)))
def test_policy_matches_reference_with_pins(ops, cap, name):
    got = replay(Tier("t", cap, make_eviction(name, cap)), ops)
    assert got == replay(Tier("t", cap, REFERENCES[name](cap)), ops)


def test_lru_group_passed_whole_then_walked_into_after_unpin():
    t = Tier("hbm", 4, make_eviction("lru", 4))
    for k in (1, 2, 3, 4):
        t.insert(k, 0.0)
    t.pin(1)
    t.pin(2)
    assert t.insert(5, 1.0) == [3]               # 1, 2 passed: order 4 5 [1 2]
    assert t.insert(6, 2.0) == [4]               # order 5 [1 2] 6
    t.unpin(2)
    assert t.insert(7, 3.0) == [5]               # order [1 2] 6 7
    assert t.insert(8, 4.0) == [2]               # walks into the group: 1 passed, 2 goes
    t.unpin(1)                                   # order 6 7 8 [1]
    assert [t.insert(k, 5.0) for k in (9, 10, 11, 12)] == [[6], [7], [8], [1]]
