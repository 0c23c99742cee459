"""Compiled tiers and BlockStream: pins, capacity invariants, prefix lookup, dense ids."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from core_helpers import CompiledTier
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.sim.blocks import BlockStream
from kvplan.sim.core import layout as L
from kvplan.sim.core import rules
from kvplan.sim.core.spec import CoreSpec
from kvplan.sim.core.state import build_state
from kvplan.sim.policies import dispatch
from kvplan.workload.schema import WORKLOAD_SCHEMA, Workload, WorkloadMeta
from kvplan.workload.validate import block_hash_lists


def make_workload(hash_lists: list[list[int]], block_size: int = 16) -> Workload:
    n = len(hash_lists)
    table = pa.table({
        "request_id": pa.array(range(n), pa.int64()),
        "session_id": pa.array(range(n), pa.int64()),
        "turn": pa.array([0] * n, pa.int32()),
        "arrival_s": pa.array([float(i) for i in range(n)], pa.float64()),
        "input_tokens": pa.array([len(h) * block_size + 3 for h in hash_lists], pa.int32()),
        "output_tokens": pa.array([4] * n, pa.int32()),
        "block_hashes": pa.array(hash_lists, pa.list_(pa.uint64())),
        "tool_wait_s": pa.array([None] * n, pa.float64()),
    }, schema=WORKLOAD_SCHEMA)
    return Workload(table, WorkloadMeta("synth", "test", block_size, "none"))


def lru_tier(cap: int) -> CompiledTier:
    return CompiledTier("lru", cap, 16)


def test_block_stream_dense_ids_and_offsets():
    s = BlockStream.from_workload(make_workload([[9, 4], [9, 4, 7], [2], [2**64 - 1]]))
    assert s.ids.tolist() == [0, 1, 0, 1, 2, 3, 4]
    assert s.offsets.tolist() == [0, 2, 5, 6, 7]
    assert (s.num_blocks, s.num_requests, s.num_accesses, s.block_size) == (5, 4, 7, 16)
    assert s.ids[s.offsets[1]:s.offsets[2]].tolist() == [0, 1, 2]


def test_block_stream_handles_sliced_arrow_and_empty_requests():
    arr = pa.array([[1], [], [5, 1], [7]], pa.list_(pa.uint64())).slice(1, 3)
    s = BlockStream.from_hash_lists(arr, 8)
    assert s.ids.tolist() == [0, 1, 2] and s.offsets.tolist() == [0, 0, 2, 3]


def test_future_uses_are_sorted_use_ranks_per_block():
    fu = BlockStream.from_hash_lists([[9, 4], [9], [4, 9]], 16).future_uses()
    nine, four = 0, 1
    assert fu.offsets.tolist() == [0, 3, 5] and fu.distinct_times.tolist() == [0.0, 1.0, 2.0]
    assert fu.ranks[fu.offsets[nine]:fu.offsets[nine + 1]].tolist() == [0, 1, 2]
    assert fu.ranks[fu.offsets[four]:fu.offsets[four + 1]].tolist() == [0, 2]
    at = BlockStream.from_hash_lists([[9], [9], [9]], 16).future_uses(np.array([10.0, 30.0, 30.0]))
    assert at.ranks.tolist() == [0, 1, 1] and at.distinct_times.tolist() == [10.0, 30.0]
    late = BlockStream.from_hash_lists([[9], [4], [9]], 16).future_uses(np.array([5.0, 1.0, 2.0]))
    assert late.ranks.tolist() == [1, 2, 0]  # block 9's uses sorted although times were not


def test_tier_lazy_eviction_and_pins():
    t = lru_tier(2)
    assert t.insert(1, 0.0) == [] and t.insert(2, 1.0) == []
    assert t.used_blocks == 2
    t.pin(1)
    assert t.insert(3, 2.0) == [2]          # 1 is pinned, so 2 goes although 1 is older
    assert 1 in t and 3 in t and 2 not in t
    t.pin(3)
    assert not t.can_insert()
    t.unpin(3)
    assert t.refcount(1) == 1 and t.refcount(3) == 0 and t.refcount(9) == 0
    assert t.insert(4, 4.0) == [3]


def test_tier_insert_pinned_and_remove():
    t = lru_tier(3)
    t.insert(5, 0.0, pin=True)
    assert t.pinned_blocks == 1
    t.remove(5)                             # pinned: remove leaves it
    assert 5 in t
    t.unpin(5)
    t.remove(5)
    assert 5 not in t and t.used_blocks == 0


def test_tier_capacity_zero_is_absent():
    m, _ = build_state(CoreSpec.of((4, 0, 0)), 8, 2)
    assert L.tier_word(m, 1, L.CAP) == 0 and L.tier_word(m, 1, L.USED) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ins", "pin", "unpin", "touch", "evict"]),
                          st.integers(0, 9)), max_size=80), st.integers(1, 5))
def test_tier_invariants_hold(ops, cap):
    t = lru_tier(cap)
    pins: dict[int, int] = {}
    for op, k in ops:
        if op == "ins" and k not in t and t.can_insert():
            evicted = t.insert(k, 0.0)
            assert not set(evicted) & {p for p, c in pins.items() if c}
        elif op == "pin" and k in t:
            t.pin(k)
            pins[k] = pins.get(k, 0) + 1
        elif op == "unpin" and pins.get(k):
            t.unpin(k)
            pins[k] -= 1
        elif op == "touch" and k in t:
            t.touch(k, 0.0)
        elif op == "evict":
            t.evict(k % 3)
        assert t.used_blocks <= cap
        assert t.pinned_blocks == sum(1 for c in pins.values() if c)
        assert all(p in t for p, c in pins.items() if c)


def test_lookup_prefix_stops_at_first_missing_block():
    m, f = build_state(CoreSpec.of((4, 4, 4)), 16, 8)
    keys = np.array
    dispatch.place_all(m, f, 0, keys([10], np.int64), int(m[L.A_AT]))
    dispatch.place_all(m, f, 1, keys([10, 11, 14], np.int64), int(m[L.A_AT]))
    dispatch.place_all(m, f, 2, keys([12], np.int64), int(m[L.A_AT]))
    hits = rules.lookup(m, keys([10, 11, 12, 13, 14], np.int64), 5)
    assert hits == 3 and m[m[L.LEVELS_AT]:m[L.LEVELS_AT] + 3].tolist() == [0, 1, 2]
    assert rules.lookup(m, keys([13, 10], np.int64), 2) == 0
    assert rules.lookup(m, keys([10, 11, 12], np.int64), 2) == 2      # the limit


def test_block_hash_lists_is_one_array_without_copying_one_chunk():
    lists = pa.array([[1, 2], [3]], pa.list_(pa.uint64()))
    one = pa.table({"block_hashes": pa.chunked_array([lists])})
    got = block_hash_lists(one)
    assert got.values.buffers()[1].address == lists.values.buffers()[1].address
    two = pa.table({"block_hashes": pa.chunked_array([lists[:1], lists[1:]])})
    assert block_hash_lists(two).to_pylist() == [[1, 2], [3]]
