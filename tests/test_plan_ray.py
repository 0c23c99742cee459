"""Ray fan-out: the same plan and the same --compare results on a local two-worker Ray as in
the local process pool; bad addresses and a missing package are one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.hardware.prices import load_prices
from kvplan.plan.executor import LOCAL_CLUSTER, LocalPool
from kvplan.plan.planner import contexts, run_plan
from kvplan.plan.spec import PlanSpec
from kvplan.trace import load_workload

SPACE = {"replicas": [1, 2], "hbm_kv_gib": [30.0, 55.0], "dram_gib": [0.0, 128.0],
         "ssd_gib": [0.0], "evictions": ["lru", "fifo"]}


def small_workload():
    """The bundled trace's first 600 requests."""
    w = load_workload()
    return type(w)(table=w.table.slice(0, 600), meta=w.meta)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             configure_logging=False)
    yield ray
    ray.shutdown()


def plan_with(pool) -> object:
    spec = PlanSpec(space=SPACE, verify_top=2, verify_near_misses=1, jobs=2, seed=1,
                    engines=("none",))  # the free search: the executors, not the engines
    try:
        return run_plan(small_workload(), spec, load_prices(), pool=pool)
    finally:
        pool.close()


def test_plan_on_ray_equals_the_local_pool(ray_cluster):
    from kvplan.plan.executor import RayCluster

    local = plan_with(LocalPool(2))
    remote = plan_with(RayCluster(LOCAL_CLUSTER, 2))
    assert remote.candidates.equals(local.candidates)
    assert remote.verified.height > 0 and remote.verified.equals(local.verified)
    assert remote.verified_requests.equals(local.verified_requests)
    assert remote.recommendation.best == local.recommendation.best
    assert remote.workers.runs == local.workers.runs > 0


def test_screen_shards_on_ray_equal_in_process(ray_cluster):
    """Chunks small enough that each evaluate call fans out over several tasks."""
    from kvplan.plan import screen
    from kvplan.plan.executor import RayCluster, ShardedScreen
    from kvplan.plan.policy_scale import LRU_SCALE
    from kvplan.plan.prepare import prepare

    trace = prepare(small_workload())
    cm = contexts(PlanSpec(), [])[0].cm
    n = 9
    cands = screen.Candidates(np.linspace(20, 60, n), np.linspace(0, 256, n), np.zeros(n),
                              np.arange(n) % 2 == 0, LRU_SCALE)
    slo = screen.Slo(ttft_ms=2000.0, percentile=90.0)
    cells = 3 * trace.stream.num_requests  # 3 candidates per shard
    want = screen.evaluate(cm, [trace], cands, slo, chunk_cells=cells)
    ex = RayCluster(LOCAL_CLUSTER, 2)
    try:
        got = ShardedScreen(ex, cells)(cm, [trace], cands, slo, 256)
    finally:
        ex.close()
    assert set(got) == set(want)
    for k, v in want.items():
        assert np.array_equal(got[k], v), k


def test_replay_compare_on_ray_equals_in_process(ray_cluster, tmp_path):
    runner = CliRunner()
    w = small_workload()
    path = tmp_path / "w.parquet"
    from kvplan.workload import write_workload

    write_workload(w, path)
    args = ["replay", "--trace", str(path), "--mode", "cache", "--dram-gib", "64",
            "--compare", "eviction=lru,fifo", "--json"]
    local = runner.invoke(app, args)
    remote = runner.invoke(app, [*args, "--ray"])
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    assert json.loads(remote.output) == json.loads(local.output)


def test_unreachable_address_is_one_line_exit_2():
    pytest.importorskip("ray")
    res = CliRunner().invoke(app, ["replay", "--compare", "eviction=lru,fifo", "--ray-address",
                                   "127.0.0.1:1"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "Error: --ray-address: cannot reach the Ray cluster at '127.0.0.1:1' "
        "(Connection refused)"]


def test_missing_ray_is_one_line_exit_2(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    res = CliRunner().invoke(app, ["plan", "--ray", "--verify-top", "0"])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "pip install" in res.output


def test_ray_needs_compare_on_replay():
    res = CliRunner().invoke(app, ["replay", "--ray"])
    assert res.exit_code == 2 and "--compare" in res.output


def test_local_pool_shares_a_workload_through_one_file():
    pool = LocalPool(1)
    try:
        w = small_workload()
        handle = pool.share(w)
        got = handle.get()
        assert got.table.equals(w.table) and got.meta == w.meta
        assert isinstance(pool.share(pl.DataFrame()).get(), pl.DataFrame)
    finally:
        pool.close()
