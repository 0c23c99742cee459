"""Pooling a candidate's replica runs into one set of simulated figures (hand-computed)."""

from __future__ import annotations

import polars as pl
import pytest

from kvplan.plan.verify import RunOutput, summarise
from kvplan.sim.results import (
    Extrapolation,
    LinkFigures,
    Percentiles,
    RunSummary,
    TierFigures,
    Timing,
)


def summary(requests: int, prompt_blocks: int = 0, hits: tuple[int, int, int] = (0, 0, 0),
            goodput: float = 0.0, tok_s: float = 0.0, stall_s: float = 0.0) -> RunSummary:
    """An event-mode summary with the figures verify pools (the rest zero)."""
    none = Percentiles(None, None, None)
    timing = Timing("done", requests, 1.0, 0.0, tok_s, 0.0, goodput, 1.0, none, none, none,
                    None, stall_s, None, 0, 0.0, Extrapolation("", 0, 0))
    tiers = tuple(TierFigures(0, 0, 0.0, h, 0.0, 0.0) for h in hits)
    return RunSummary("event", "", requests, prompt_blocks, 0, 0, tiers,
                      (LinkFigures(0, 0.0),) * 4, timing)


def run(replica: int, ttft_s: list[float], run: RunSummary) -> RunOutput:
    n = len(ttft_s)
    req = pl.DataFrame({"finished": [True] * n, "ttft_s": ttft_s, "tpot_s": [0.01 * (replica + 1)]
                        * n})
    return RunOutput(7, replica, "ok", run, req, pl.DataFrame())


def test_replicas_pool_requests_hits_and_goodput():
    a = run(0, [1.0, 2.0, 3.0], summary(3, 30, (6, 3, 0), 1.5, 100.0, 0.3))
    b = run(1, [4.0], summary(1, 10, (2, 0, 5), 0.5, 50.0, 0.1))
    row = summarise(7, [a, b], 50.0)
    assert row["sim_ttft_p50_ms"] == pytest.approx(2500.0)  # median of 1, 2, 3, 4 s
    assert row["sim_tpot_ms"] == pytest.approx((3 * 10 + 20) / 4)
    assert row["sim_hit_ratio_hbm"] == pytest.approx(8 / 40)
    assert row["sim_hit_ratio_ssd"] == pytest.approx(5 / 40)
    assert row["sim_goodput_rps"] == pytest.approx(2.0)
    assert row["sim_throughput_tok_s"] == pytest.approx(150.0)
    assert row["sim_load_stall_mean_ms"] == pytest.approx(100.0)  # 0.4 s over 4 requests
    assert row["sim_finished_frac"] == 1.0 and row["sim_stop_reason"] == "done"


def test_a_failed_replica_fails_the_candidate():
    ok = run(0, [1.0], summary(1))
    bad = RunOutput(7, 1, "timed out", None, pl.DataFrame(), pl.DataFrame())
    row = summarise(7, [ok, bad], 90.0)
    assert row["sim_finished_frac"] == 0.0 and row["sim_stop_reason"] == "timed out"
    assert row["sim_ttft_pq_ms"] is None


def test_simulator_decides_cheapest_passing_candidate_first():
    """A near-miss the screen rejected but the simulator accepts wins when it is cheaper."""
    from kvplan.plan.planner import _decide
    from kvplan.plan.spec import PlanSpec

    ranked = pl.DataFrame({"candidate_id": [0, 1, 2], "feasible": [True, True, False],
                           "usd_per_h": [3.0, 4.0, 2.0], "ttft_pq_ms": [10.0, 9.0, 99.0]})
    verified = pl.DataFrame({"candidate_id": [0, 1, 2], "sim_feasible": [False, True, True],
                             "sim_ttft_pq_ms": [50.0, 8.0, 40.0]})
    decided = _decide(ranked, verified, PlanSpec())
    assert decided["candidate_id"].to_list() == [2, 1, 0]
