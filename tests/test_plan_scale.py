"""Plans at scale: dense ids, per-replica traces without re-hashing, chunked screening."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_plan_routing import workload

from kvplan.plan.prepare import prepare, replica_trace
from kvplan.plan.routing import assign_replicas, route
from kvplan.plan.stream import access_stream, select_requests
from kvplan.sim.blocks import dense_ids


def unique_ids(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Reference: dense ids by first appearance through np.unique."""
    uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq), dtype=np.int64)
    return rank[inverse.reshape(-1)], len(uniq)


def test_dense_ids_worked_example():
    ids, n = dense_ids(np.array([9, 4, 9, 7], dtype=np.uint64))
    assert ids.tolist() == [0, 1, 0, 2] and n == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=3000), st.integers(1, 50))
def test_dense_ids_match_np_unique(values, spread):
    arr = np.array(values, dtype=np.uint64) % np.uint64(spread * 37 + 1) * np.uint64(2**40)
    got, n = dense_ids(arr)
    want, m = unique_ids(arr)
    assert n == m and np.array_equal(got, want)


def test_select_requests_worked_example():
    w = workload([[5, 6, 7], [5, 6]])
    s = select_requests(access_stream(w), np.array([1]))
    assert s.ids.tolist() == [1, 0] and s.offsets.tolist() == [0, 2] and s.num_blocks == 2


def routed_prompts(seed: int) -> tuple[list[list[int]], list[int]]:
    rng = np.random.default_rng(seed)
    prompts, sessions = [], []
    for i in range(120):
        doc = int(rng.integers(0, 6))
        prompts.append([1000 + doc] + [doc * 100 + k for k in range(int(rng.integers(0, 30)))])
        sessions.append(i // 3)
    return prompts, sessions


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 1000), st.integers(2, 4), st.sampled_from([None, 0.5, 1.0]))
def test_replica_trace_equals_preparing_the_routed_workload(seed, replicas, rate):
    prompts, sessions = routed_prompts(seed)
    w = workload(prompts, sessions, gap_s=0.5)
    whole = prepare(w, sample_rate=rate, seed=3)
    rep = assign_replicas(w, replicas)
    for r, part in enumerate(route(w, replicas)):
        if part.num_requests == 0:
            continue
        want = prepare(part, whole.duration_s, rate, 3)
        got = replica_trace(whole, np.flatnonzero(rep == r), 3)
        assert np.array_equal(got.stream.ids, want.stream.ids)
        assert np.array_equal(got.stream.offsets, want.stream.offsets)
        assert got.stream.num_blocks == want.stream.num_blocks
        assert np.array_equal(got.curve.distance, want.curve.distance)
        assert np.array_equal(got.curve.cum_hits, want.curve.cum_hits)
        for name in ("pd", "warm_blocks", "input_tokens", "arrival_s"):
            a, b = getattr(got, name), getattr(want, name)
            assert (a is None and b is None) or np.array_equal(a, b)
        assert got.duration_s == want.duration_s and got.sample_rate == want.sample_rate


def test_screen_in_chunks_equals_one_chunk():
    """Each candidate's figures depend on it alone: any chunking gives the same columns (to
    the last bits: numpy's reductions group a column's sums by the array's width)."""
    from kvplan.plan import screen
    from kvplan.plan.planner import contexts
    from kvplan.plan.policy_scale import LRU_SCALE
    from kvplan.plan.spec import PlanSpec

    prompts, sessions = routed_prompts(5)
    trace = prepare(workload(prompts, sessions, gap_s=0.5))
    cm = contexts(PlanSpec(), [])[0].cm
    n = 7
    cands = screen.Candidates(np.linspace(1, 60, n), np.linspace(0, 256, n), np.zeros(n),
                              np.arange(n) % 2 == 0, LRU_SCALE)
    slo = screen.Slo(ttft_ms=2000.0, percentile=90.0)
    whole = screen.evaluate(cm, [trace, trace], cands, slo, chunk_cells=10**9)
    for per in (2, 3):
        parts = screen.evaluate(cm, [trace, trace], cands, slo,
                                chunk_cells=per * 2 * trace.stream.num_requests)
        for k, v in whole.items():
            if v.dtype.kind == "f":
                np.testing.assert_allclose(parts[k], v, rtol=1e-12, err_msg=f"{per} {k}")
            else:
                assert np.array_equal(parts[k], v), (per, k)


def test_busiest_window_worked_example_and_cut():
    from kvplan.plan.window import busiest_window, cut

    a = np.array([0.0, 1.0, 10.0, 11.0, 12.0, 30.0])
    w = busiest_window(a, 5.0)
    assert (w.start_s, w.end_s, w.warmup_s) == (10.0, 15.0, 5.0)
    heavy = busiest_window(a, 5.0, np.array([1.0, 1.0, 1.0, 1.0, 1.0, 10.0]))
    assert heavy.start_s == 30.0
    wl = workload([[i] for i in range(6)])
    kept = cut(wl, busiest_window(np.arange(6.0), 2.0))  # window [0, 2), warm-up from -2
    assert kept.table.column("arrival_s").to_pylist() == [0.0, 1.0]


def test_window_totals_count_only_window_requests():
    import polars as pl

    from kvplan.plan.verify import RunOutput, summarise
    from kvplan.plan.window import Window
    from kvplan.sim.results import (
        Extrapolation,
        LinkFigures,
        Percentiles,
        RunSummary,
        TierFigures,
        Timing,
    )

    req = pl.DataFrame({"arrival_s": [0.0, 5.0, 6.0], "finished": [True] * 3,
                        "ttft_s": [9.0, 1.0, 3.0], "tpot_s": [0.01] * 3,
                        "prompt_blocks": [10, 4, 6], "hit_hbm_blocks": [10, 2, 3],
                        "hit_dram_blocks": [0, 1, 0], "hit_ssd_blocks": [0, 0, 0],
                        "output_tokens": [5, 10, 30], "load_stall_s": [1.0, 0.5, 0.5]})
    none = Percentiles(None, None, None)
    timing = Timing("done", 3, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, none, none, none, None, 0.0, None,
                    0, 0.0, Extrapolation("", 0, 0))
    tiers = tuple(TierFigures(0, 0, 0.0, 0, 0.0, 0.0) for _ in range(3))
    summary = RunSummary("event", "", 3, 20, 0, 0, tiers, (LinkFigures(0, 0.0),) * 4, timing)
    run = RunOutput(1, 0, "ok", summary, req, pl.DataFrame())
    row = summarise(1, [run], 50.0, Window(5.0, 10.0, 5.0), slo_ttft_ms=2000.0)
    assert row["sim_ttft_p50_ms"] == 2000.0  # median of 1 s and 3 s; the warm-up's 9 s left out
    assert row["sim_hit_ratio_hbm"] == 0.5 and row["sim_hit_ratio_dram"] == 0.1
    assert row["sim_goodput_rps"] == 1 / 5.0 and row["sim_throughput_tok_s"] == 40 / 5.0
    assert row["sim_load_stall_mean_ms"] == 500.0


def test_capped_verification_is_noted():
    import polars as pl

    from kvplan.plan.planner import _capped_note
    from kvplan.plan.spec import PlanSpec

    ver = pl.DataFrame({"sim_stop_reason": ["done", "wall-time cap 60 s reached", None]})
    (note,) = _capped_note(ver, PlanSpec())
    assert note.startswith("1 of 3 verified candidates stopped") and "--verify-wall-s" in note
    assert _capped_note(ver.head(1), PlanSpec()) == []


def test_routes_keep_curves_only_drops_traces_same_curves():
    """After the screen the plan keeps each replica count's curves, not its traces."""
    from kvplan.plan.planner import Routes

    prompts, sessions = routed_prompts(7)
    w = workload(prompts, sessions, gap_s=0.5)
    routes = Routes(w, prepare(w), 0)
    want = {r: routes.curve(r) for r in (1, 2, 3)}
    routes.keep_curves_only()
    assert not routes._traces
    for r, c in want.items():
        got = routes.curve(r)
        assert np.array_equal(got.distance, c.distance)
        assert np.array_equal(got.cum_hits, c.cum_hits)
    assert not routes._traces  # answered from the kept curves, no trace rebuilt


def test_worker_keeps_one_mapped_sub_workload(tmp_path):
    """A local-pool worker keeps only the sub-workload it mapped last."""
    from kvplan.plan import executor

    pool = executor.LocalPool.__new__(executor.LocalPool)  # share() alone: no processes
    pool._tmp = None
    prompts, sessions = routed_prompts(2)
    parts = list(route(workload(prompts, sessions, gap_s=0.5), 2))
    handles = [pool.share(p) for p in parts]
    try:
        for h, p in zip(handles, parts, strict=True):
            assert h.get().table.equals(p.table)
            assert list(executor._OPENED) == [h.path]
    finally:
        executor._OPENED.clear()
        pool._tmp.cleanup()
