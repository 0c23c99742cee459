"""SHARDS in the plan: when it is used, the warm-prefix estimator, its reported error, the CLI."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.hardware.prices import load_prices
from kvplan.plan.curves import curve_from_distances, warm_prefix_blocks
from kvplan.plan.planner import run_plan
from kvplan.plan.prepare import prepare
from kvplan.plan.sampling import choose_sample_rate, subset_error
from kvplan.plan.shards import shards_curve
from kvplan.plan.spec import PlanSpec
from kvplan.plan.stackdist import stack_distances
from kvplan.trace import load_workload

ENV = {"COLUMNS": "120"}
SPACE = {"replicas": [1, 2], "evictions": ["lru"]}
CONFIG = ["replicas", "eviction", "inclusive", "hbm_kv_gib", "dram_gib", "ssd_gib"]
HIT_BOUND = 0.03
"""|screen hit ratio via SHARDS R=0.1 - exact| per tier for the recommended config."""


@pytest.fixture(scope="module")
def bundled():
    return load_workload(None)


@pytest.fixture(scope="module")
def plans(bundled):
    prices = load_prices()
    exact = run_plan(bundled, PlanSpec(verify_top=0, space=SPACE), prices)
    sampled = run_plan(bundled, PlanSpec(verify_top=0, space=SPACE, exact_max_accesses=0,
                                         sample_rate=0.1), prices)
    return exact, sampled


def test_choose_sample_rate_by_hand():
    assert choose_sample_rate(120_000, 20_000_000, None) is None
    assert choose_sample_rate(50_000_000, 20_000_000, None) == pytest.approx(0.04)
    assert choose_sample_rate(50_000_000, 20_000_000, 0.01) == 0.01
    assert choose_sample_rate(1_000, 0, None) == 1.0


def test_warm_prefix_worked_example():
    """Prompts [0, 1], [0, 2], [0, 1, 3] (tail-first ids) -> warm prefixes 0, 1, 2."""
    ids = np.array([1, 0, 2, 0, 3, 1, 0])
    assert warm_prefix_blocks(ids, np.array([0, 2, 4, 7]), 4).tolist() == [0, 1, 2]


def test_shards_at_rate_one_with_requests_equals_exact(bundled):
    trace = prepare(bundled)
    s = trace.stream
    exact = curve_from_distances(stack_distances(s.ids, s.num_blocks, s.offsets))
    full = shards_curve(s.ids.astype(np.uint64), 1.0, offsets=s.offsets).curve
    caps = np.array([1, 10, 100, 1_000, 10_000])
    np.testing.assert_allclose(full.hits(caps), exact.hits(caps))
    assert subset_error(s, 1.0, 0, np.array([0.01, 0.1, 1.0])).max_abs < 1e-12


def test_sampled_trace_pools_to_the_warm_total_times_curve_shape(bundled):
    t = prepare(bundled, sample_rate=0.1)
    assert t.pd is None and t.sample_rate == pytest.approx(0.1, abs=1e-6)
    caps = np.array([0, 100, 10**9])
    per = t.prefix_hits(caps)
    assert per[:, 0].sum() == 0
    assert per[:, -1].sum() == pytest.approx(t.warm_blocks.sum())
    assert np.all(per <= t.warm_blocks[:, None] + 1e-9)


def test_default_bundled_plan_is_exact(plans):
    exact, _ = plans
    assert exact.curve_method == "exact (117,888 accesses)"


def test_sampled_plan_reports_rate_and_subset_error(plans):
    _, sampled = plans
    m = sampled.curve_method
    assert m.startswith("SHARDS R=0.1 (") and "sampled of 117,888" in m
    err = float(m.split("mean |Δ hit ratio| = ")[1].split()[0])
    assert err < 0.01  # measured 0.0023 at R = 0.1 on the bundled trace


def test_sampled_recommendation_hit_ratios_within_bound_of_exact(plans):
    """The screen's per-tier hit ratios of the sampled plan's pick, vs the exact path's for the
    same configuration, differ by < HIT_BOUND (measured <= 0.01)."""
    exact, sampled = plans
    best = sampled.recommendation.best
    row = exact.candidates.filter(*(pl.col(k) == best[k] for k in CONFIG)).row(0, named=True)
    for k in ("hit_ratio", "hit_ratio_hbm", "hit_ratio_dram", "hit_ratio_ssd"):
        assert abs(best[k] - row[k]) < HIT_BOUND, k
    both = exact.candidates.join(sampled.candidates, on=CONFIG, suffix="_s")
    assert (both["hit_ratio"] - both["hit_ratio_s"]).abs().mean() < 0.01


def test_cli_sampled_reports_method_in_console_json_and_parquet(tmp_path):
    args = ["plan", "--verify-top", "0", "--replicas", "1", "--eviction", "lru",
            "--exact-max-accesses", "1000", "--sample-rate", "0.1"]
    r = CliRunner().invoke(app, args, env=ENV)
    assert r.exit_code == 0, r.output
    assert "Hit-ratio curves: SHARDS R=0.1" in r.stdout
    r = CliRunner().invoke(app, args + ["--json", "-o", str(tmp_path / "out")], env=ENV)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["curve_method"].startswith("SHARDS R=0.1")
    meta = pq.read_schema(tmp_path / "out" / "candidates.parquet").metadata
    assert meta[b"kvplan.curve_method"].decode().startswith("SHARDS R=0.1")


@pytest.mark.parametrize("flag,value", [("--sample-rate", "1.5"), ("--sample-rate", "0"),
                                        ("--exact-max-accesses", "-1")])
def test_cli_bad_sampling_knobs(tmp_path, flag, value):
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["plan", "--verify-top", "0", flag, value, "-o", str(out)],
                           env=ENV)
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and f"Error: {flag}: " in r.stderr
    assert not out.exists()
