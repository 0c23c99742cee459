"""Story tests: exact eviction order of each compiled policy on tiny pools, pins included."""

from __future__ import annotations

from core_helpers import CompiledTier, list_keys

from kvplan.sim.blocks import BlockStream
from kvplan.sim.policies import arc, eviction_policy, s3fifo


def tier(name: str, cap: int) -> CompiledTier:
    return CompiledTier(name, cap)


def test_lru_story():
    t = tier("lru", 3)
    for k in (1, 2, 3):
        assert t.insert(k, 0.0) == []
    t.touch(1, 1.0)                              # order 2 3 1
    assert t.insert(4, 2.0) == [2]               # order 3 1 4
    t.pin(3)
    assert t.insert(5, 3.0) == [1]               # 3 pinned: skipped, counts as recent
    t.unpin(3)
    assert t.insert(6, 4.0) == [4]
    assert t.insert(7, 5.0) == [5] and t.insert(8, 6.0) == [3]


def test_fifo_story():
    t = tier("fifo", 3)
    for k in (1, 2, 3):
        t.insert(k, 0.0)
    t.touch(1, 1.0)                              # no effect on FIFO order
    assert t.insert(4, 2.0) == [1]
    t.pin(2)
    assert t.insert(5, 3.0) == [3]               # 2 pinned keeps its place
    assert t.insert(6, 4.0) == [4]
    t.unpin(2)
    assert t.insert(7, 5.0) == [2]


def test_lfu_story():
    t = tier("lfu", 3)
    for k in (1, 2, 3):
        t.insert(k, 0.0)
    t.touch(1, 1.0)
    t.touch(1, 2.0)
    t.touch(2, 3.0)                              # counts 1:3 2:2 3:1
    assert t.insert(4, 4.0) == [3]
    t.touch(4, 5.0)                              # 2 and 4 tie at 2; 2 used longer ago
    assert t.insert(5, 6.0) == [2]
    t.pin(5)
    assert t.insert(6, 7.0) == [4]               # 5 and 6 (count 1) are pinned... 6 incoming
    t.unpin(5)
    assert t.insert(7, 8.0) == [5]


def test_s3fifo_story():
    t = tier("s3fifo", 4)                        # small share 1 block, ghost 3 ids
    for k in (1, 2, 3, 4):
        t.insert(k, 0.0)
    t.touch(2, 1.0)
    assert t.insert(5, 2.0) == [1]               # S tail 1 never reused -> ghost
    assert t.insert(6, 3.0) == [3]               # 2 reused -> main; 3 -> ghost
    assert t.insert(1, 4.0) == [4]               # 1 was a ghost: straight to main
    t.touch(1, 5.0)
    assert t.insert(7, 6.0) == [5]
    assert list_keys(t, s3fifo.region, s3fifo.MAIN) == [2, 1]
    assert list_keys(t, s3fifo.region, s3fifo.SMALL) == [6, 7]
    assert list_keys(t, s3fifo.region, s3fifo.GHOST) == [3, 4, 5]


def test_s3fifo_main_gives_second_chances():
    t = tier("s3fifo", 2)                        # small share 1
    t.insert(1, 0.0)
    t.touch(1, 0.0)
    t.insert(2, 0.0)
    assert t.insert(3, 0.0) == [2]               # 1 promoted to main, 2 -> ghost
    assert t.insert(2, 0.0) == [3]               # ghost hit: 2 to main; S holds 3 -> evict 3
    t.touch(1, 0.0)
    assert t.insert(4, 0.0) == [2]               # main: 1 has a credit, 2 does not


def test_arc_story():
    t = tier("arc", 2)
    t.insert(1, 0.0)
    t.insert(2, 0.0)
    assert t.insert(3, 0.0) == [1]               # T1 full: LRU of T1 dropped
    t.touch(2, 0.0)                              # T1 [3]  T2 [2]
    assert t.insert(4, 0.0) == [3]               # |T1| = 1 > p = 0 -> B1 [3]
    assert t.insert(3, 0.0) == [2]               # B1 hit: p = 1, REPLACE takes T2's LRU
    v = arc.region(t.m, 0)
    assert t.f[v[6]] == 1.0
    assert list_keys(t, arc.region, arc.T1) == [4] and list_keys(t, arc.region, arc.T2) == [3]
    assert list_keys(t, arc.region, arc.B2) == [2]


def test_belady_story_and_oracle_label():
    stream = [1, 2, 3, 1, 2]
    blocks = BlockStream.from_hash_lists([[k] for k in stream], 1)
    ids = {1: 0, 2: 1, 3: 2}                     # first-appearance order
    t = CompiledTier("belady", 2, 3, blocks.future_uses())
    evicted = []
    for now, key in enumerate(stream):
        k = ids[key]
        if k in t:
            t.touch(k, float(now))
        else:
            evicted += t.insert(k, float(now))
    assert evicted == [ids[2], ids[3]]           # 2 used farthest; then 1 and 3 both never
    assert eviction_policy("belady").is_oracle   # again: 3, touched earlier, goes first
    assert not any(eviction_policy(n).is_oracle for n in ("lru", "fifo", "lfu", "s3fifo", "arc"))


def test_belady_skips_pinned_and_recomputes_passed_uses():
    blocks = BlockStream.from_hash_lists([[0], [1], [0], [2], [1]], 1)
    t = CompiledTier("belady", 2, 3, blocks.future_uses())
    t.insert(0, 0.0)
    t.insert(1, 1.0)
    t.pin(1)                                     # 1 is used at 4, 0 at 2: 1 would go
    assert t.insert(2, 3.0) == [0]               # 0's use at 2 passed untouched: now inf
