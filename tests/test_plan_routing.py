"""Prefix-affinity routing: deterministic, sessions together, shared prefixes together, balanced."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.plan.routing import assign_replicas, route, routing_keys
from kvplan.workload import Workload, WorkloadMeta


def workload(prompts: list[list[int]], sessions: list[int] | None = None,
             gap_s: float = 1.0, tokens_per_block: int = 16) -> Workload:
    """Request i has block_hashes prompts[i], session sessions[i], arrival i * gap_s."""
    n = len(prompts)
    sessions = list(range(n)) if sessions is None else sessions
    table = pa.table({
        "request_id": pa.array(range(n), pa.int64()),
        "session_id": pa.array(sessions, pa.int64()),
        "turn": pa.array([0] * n, pa.int32()),
        "arrival_s": pa.array([i * gap_s for i in range(n)], pa.float64()),
        "input_tokens": pa.array([max(len(p), 1) * tokens_per_block for p in prompts], pa.int32()),
        "output_tokens": pa.array([8] * n, pa.int32()),
        "block_hashes": pa.array(prompts, pa.list_(pa.uint64())),
        "tool_wait_s": pa.array([None] * n, pa.float64()),
    })
    meta = WorkloadMeta(source_format="synth", source_file="routing-test",
                        block_size=tokens_per_block, tokenizer="none")
    return Workload(table=table, meta=meta)


def test_keys_are_first_block_or_session_id():
    w = workload([[7, 8], [], [9]], sessions=[40, 41, 42])
    assert routing_keys(w).tolist() == [7, 41, 9]


def test_one_replica_takes_everything():
    w = workload([[i] for i in range(10)])
    assert assign_replicas(w, 1).tolist() == [0] * 10


def test_deterministic():
    w = workload([[i % 7, 100 + i] for i in range(200)], gap_s=0.1)
    a = assign_replicas(w, 3)
    assert np.array_equal(a, assign_replicas(w, 3))
    parts = route(w, 3)
    again = route(w, 3)
    assert all(p.table.equals(q.table) for p, q in zip(parts, again, strict=True))


def test_route_splits_every_request_once_in_order():
    w = workload([[i] for i in range(50)], gap_s=0.5)
    parts = route(w, 4)
    ids = np.concatenate([p.table.column("request_id").to_numpy() for p in parts])
    assert sorted(ids.tolist()) == list(range(50))
    for p in parts:
        own = p.table.column("request_id").to_numpy()
        assert np.all(np.diff(own) > 0)
        assert "replica" in p.meta.notes


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 15), min_size=1, max_size=120), st.integers(1, 5),
       st.floats(0.01, 100.0))
def test_sessions_stay_on_one_replica(sessions, replicas, gap_s):
    """Every request of a session goes where its first request went, whatever the load."""
    prompts = [[s * 1000 + i] for i, s in enumerate(sessions)]
    rep = assign_replicas(workload(prompts, sessions, gap_s), replicas)
    for s in set(sessions):
        assert len({int(r) for r, x in zip(rep, sessions, strict=True) if x == s}) == 1


def test_shared_prefixes_land_together_when_not_overloaded():
    """8 documents x 5 sessions each, far apart in time (loads decay to 0): every session of a
    document goes to the same replica, and the documents spread over the replicas."""
    docs = [i % 8 for i in range(40)]
    prompts = [[d, 10_000 + i] for i, d in enumerate(docs)]
    rep = assign_replicas(workload(prompts, gap_s=1000.0), 4)
    by_doc = {d: {int(r) for r, x in zip(rep, docs, strict=True) if x == d} for d in range(8)}
    assert all(len(v) == 1 for v in by_doc.values())
    assert len(set().union(*by_doc.values())) > 1


def test_balance_bounds_affinity_under_load():
    """Every session shares one first block but they arrive back to back: the bounded load
    sends sessions to the next replica in the key's ranking once the preferred one is over
    1.1 x the mean, so no replica carries much more than 1.1 / 4 of the work."""
    rep = assign_replicas(workload([[1, 100 + i] for i in range(400)], gap_s=0.05), 4)
    share = np.bincount(rep, minlength=4) / rep.size
    assert share.max() <= 1.1 / 4 + 0.01
    assert np.count_nonzero(share) == 4


def test_independent_sessions_balance_work():
    rng = np.random.default_rng(0)
    prompts = [[int(h)] for h in rng.integers(0, 2**63, 1000)]
    rep = assign_replicas(workload(prompts, gap_s=0.2), 3)
    share = np.bincount(rep, minlength=3) / rep.size
    assert np.all(np.abs(share - 1 / 3) < 0.05)
