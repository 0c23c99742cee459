"""Stack distances, SHARDS and hit-ratio curves against plain reference LRU caches."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.plan.curves import (
    INF,
    curve_from_distances,
    pooled_curve,
    prefix_distances,
    request_hits,
    tier_hits,
    tier_thresholds,
)
from kvplan.plan.shards import shards_curve
from kvplan.plan.stackdist import COLD, stack_distances
from kvplan.plan.stream import access_stream
from kvplan.workload import Workload, WorkloadMeta


def make_workload(prompts: list[list[int]], block_size: int = 16) -> Workload:
    """A workload whose request i has block_hashes prompts[i] (arrivals 1 s apart)."""
    n = len(prompts)
    table = pa.table({
        "request_id": pa.array(range(n), pa.int64()),
        "session_id": pa.array(range(n), pa.int64()),
        "turn": pa.array([0] * n, pa.int32()),
        "arrival_s": pa.array([float(i) for i in range(n)], pa.float64()),
        "input_tokens": pa.array([len(p) * block_size for p in prompts], pa.int32()),
        "output_tokens": pa.array([8] * n, pa.int32()),
        "block_hashes": pa.array(prompts, pa.list_(pa.uint64())),
        "tool_wait_s": pa.array([None] * n, pa.float64()),
    })
    meta = WorkloadMeta(source_format="synth", source_file="test", block_size=block_size,
                        tokenizer="none")
    return Workload(table=table, meta=meta)


def lru_hits(ids: np.ndarray, capacity: int) -> int:
    """Reference: hits of a plain LRU cache of ``capacity`` blocks."""
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for b in ids.tolist():
        if b in cache:
            hits += 1
            cache.move_to_end(b)
        else:
            cache[b] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits


def test_stack_distance_worked_example():
    assert stack_distances(np.array([0, 1, 2, 1, 0])).tolist() == [COLD, COLD, COLD, 1, 2]
    grouped = stack_distances(np.array([0, 1, 2, 1, 0]), 3, np.array([0, 3, 5]))
    assert grouped.tolist() == [COLD, COLD, COLD, 1, 2]
    assert stack_distances(np.array([0, 1, 0]), 2, np.array([0, 3])).tolist() == [COLD] * 3
    curve = curve_from_distances(stack_distances(np.array([0, 1, 2, 1, 0])))
    assert curve.hits(np.array([0, 1, 2, 3, 10])).tolist() == [0, 0, 1, 2, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=120))
def test_exact_curve_equals_lru_at_every_size(seq):
    ids = np.array(seq, dtype=np.int64)
    curve = curve_from_distances(stack_distances(ids))
    for cap in range(0, 15):
        assert curve.hits(cap) == lru_hits(ids, cap)


def test_stream_is_tail_first_and_prefix_hits_match_reference():
    prompts = [[1, 2, 3], [1, 2], [4, 5, 6, 7], [1, 2, 3, 9], [4, 5]]
    stream = access_stream(make_workload(prompts))
    # dense ids follow sorted hashes: 1..7 -> 0..6, 9 -> 7
    assert stream.ids.tolist() == [2, 1, 0, 1, 0, 6, 5, 4, 3, 7, 2, 1, 0, 4, 3]
    assert stream.offsets.tolist() == [0, 3, 5, 9, 13, 15]
    ids = stream.ids
    sd = stack_distances(ids, stream.num_blocks, stream.offsets)
    pd = prefix_distances(sd, stream.offsets)
    assert np.array_equal(pd, np.where(sd == COLD, INF, sd))  # chains: prefix = own distance
    caps = np.arange(0, 12)
    per_req = request_hits(pd, stream.offsets, caps)
    curve = curve_from_distances(sd)
    assert per_req.sum(axis=0).tolist() == curve.hits(caps).tolist()
    for cap in caps:
        assert curve.hits(cap) >= lru_hits(ids, int(cap))


def test_request_hits_and_prefix_distance_examples():
    assert prefix_distances(np.array([5, COLD, 2]), np.array([0, 3])).tolist() == [INF, INF, 2]
    assert request_hits(np.array([INF, 7, 3]), np.array([0, 3]), np.array([4, 8])).tolist() == [
        [1, 2]]


def test_tier_thresholds_and_hits():
    assert [t.tolist() for t in tier_thresholds(10, 30, 100, True)] == [10, 30, 100]
    assert [t.tolist() for t in tier_thresholds(10, 30, 100, False)] == [10, 40, 140]
    assert [t.tolist() for t in tier_thresholds(10, 5, 0, True)] == [10, 10, 10]
    ids = np.array([0, 1, 2, 3, 0, 1, 2, 3, 4, 0], dtype=np.int64)
    curve = curve_from_distances(stack_distances(ids))
    # distances: 0..3 cold, then 3,3,3,3, 4 cold, then 4
    h = tier_hits(curve, 2, 2, 10, inclusive=False)
    assert [x.tolist() for x in h] == [0, 4, 1]
    h = tier_hits(curve, 2, 4, 10, inclusive=True)
    assert [x.tolist() for x in h] == [0, 4, 1]


def exclusive_lru_tiers(ids: np.ndarray, caps: tuple[int, int]) -> tuple[int, int]:
    """Reference two-level exclusive LRU: HBM evictions demote to DRAM, DRAM hits promote."""
    top: OrderedDict[int, None] = OrderedDict()
    low: OrderedDict[int, None] = OrderedDict()
    h_top = h_low = 0
    for b in ids.tolist():
        if b in top:
            h_top += 1
            top.move_to_end(b)
            continue
        if b in low:
            h_low += 1
            del low[b]
        top[b] = None
        if len(top) > caps[0]:
            v, _ = top.popitem(last=False)
            low[v] = None
            if len(low) > caps[1]:
                low.popitem(last=False)
    return h_top, h_low


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 10), min_size=1, max_size=100), st.integers(1, 5),
       st.integers(0, 5))
def test_exclusive_curve_equals_demotion_chain(seq, c1, c2):
    ids = np.array(seq, dtype=np.int64)
    curve = curve_from_distances(stack_distances(ids))
    h1, h2, _ = tier_hits(curve, c1, c2, 0, inclusive=False)
    assert (int(h1), int(h2)) == exclusive_lru_tiers(ids, (c1, c2))


def test_shards_error_bound_on_reuse_stream():
    """Spatial sampling at R = 0.05 of 400 k accesses over ~40 k keys: mean error < 0.02."""
    rng = np.random.default_rng(7)
    ids = np.minimum(rng.pareto(1.5, 400_000) * 5000, 99_999).astype(np.int64)
    exact = curve_from_distances(stack_distances(ids))
    caps = np.unique(np.geomspace(100, 100_000, 40).astype(np.int64))
    for seed in range(3):
        sampled = shards_curve(ids.astype(np.uint64), 0.05, seed=seed)
        mae = np.abs(exact.hit_ratio(caps) - sampled.curve.hit_ratio(caps)).mean()
        assert abs(sampled.sample_rate - 0.05) < 1e-6
        assert mae < 0.02
    full = shards_curve(ids.astype(np.uint64), 1.0)
    assert np.allclose(full.curve.hit_ratio(caps), exact.hit_ratio(caps))


def test_exact_curve_equals_timing_free_lru_replay_on_bundled_trace():
    """Stack-distance hits = the core's LRU replay of the bare block stream (HBM only) at
    every tested size (the planner's policy scaling relies on it)."""
    from kvplan.plan.prepare import prepare
    from kvplan.sim.blocks import BlockStream
    from kvplan.sim.cache import replay_blocks
    from kvplan.sim.core.spec import CoreSpec
    from kvplan.trace import load_workload

    w = load_workload(None)
    trace = prepare(w)
    stream = BlockStream.from_workload(w)
    longest = int(np.diff(trace.stream.offsets).max())
    for cap in (longest, 2 * longest, 1000, 5000, 20000, 44000):
        hits = replay_blocks(stream, CoreSpec.of((cap, 0, 0))).hit_blocks.sum()
        assert hits == int(trace.curve.hits(cap)), cap


def test_shards_error_on_bundled_trace_within_bound():
    """R = 0.1 on the Mooncake trace (122 k accesses): mean |error| <= 0.03 over 30 sizes."""
    from kvplan.plan.prepare import prepare
    from kvplan.trace import load_workload

    trace = prepare(load_workload(None))
    caps = np.unique(np.geomspace(10, trace.stream.num_blocks, 30).astype(np.int64))
    sampled = shards_curve(trace.stream.ids.astype(np.uint64), 0.1)
    err = np.abs(sampled.curve.hit_ratio(caps) - trace.curve.hit_ratio(caps))
    assert err.mean() <= 0.03


def test_pooled_curve_adds_replica_curves():
    a = curve_from_distances(np.array([COLD, 1, 1, COLD]))
    b = curve_from_distances(np.array([COLD, 1, 3]))
    p = pooled_curve([a, b])
    assert p.total == 7.0
    assert p.hits(np.array([1, 2, 4])).tolist() == [0.0, 3.0, 4.0]
