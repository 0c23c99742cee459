"""Engine behaviours the simulator runs (scheduler rules, offload filters), --engine on replay
and plan: each engine's recommendation from what it runs, what-ifs labelled, never chosen."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.engines import scheduler_rules, tier_rules
from kvplan.errors import InputError
from kvplan.hardware.prices import load_prices
from kvplan.plan.engines import deployable_mask, engine_plans
from kvplan.plan.planner import run_plan
from kvplan.plan.screen import Slo
from kvplan.plan.spec import PlanSpec, spec_from_dict
from kvplan.sim.build import build_cost
from kvplan.sim.config import ReplayConfig
from kvplan.sim.core.spec import TierRules
from kvplan.sim.engine import EventSim
from kvplan.sim.schedrules import SchedulerRules
from kvplan.units import GIB
from tests.event_helpers import make_workload
from tests.test_plan_planner import cyclic_workload

ENV = {"COLUMNS": "120"}
BS = 16
"""Tokens per block in the story tests (llama-3.1-8b bf16: 2 MiB a block)."""


def test_each_engine_declares_its_scheduler_rules():
    vllm = SchedulerRules(cache_at_schedule=True, full_admission=True)
    assert scheduler_rules("vllm") == scheduler_rules("vllm+lmcache") == vllm
    assert scheduler_rules("dynamo-kvbm") == scheduler_rules("none") == vllm
    assert scheduler_rules("sglang-hicache") == SchedulerRules(full_admission=True)


def test_kvbm_disk_filter_is_a_tier_rule():
    """KVBM's default filter: host at once, disk on the 2nd hit; other engines' selective
    write copies to every tier on the n-th hit; write-through disables the filter."""
    assert tier_rules("dynamo-kvbm", "write-through-selective", True, 2) == TierRules(
        True, ("store", "store"), (0, 2))
    assert tier_rules("dynamo-kvbm", "write-through", True, 2) == TierRules()
    assert tier_rules("none", "write-through-selective", True, 3) == TierRules(
        True, ("store", "store"), (3, 3))
    assert tier_rules("vllm", "write-back", True, 2) == TierRules.from_write(
        "write-back", True, 2)


def _sim(rows, hbm_blocks: int, plain: bool = False, **kw) -> EventSim:
    cfg = ReplayConfig(engine="vllm", **kw)
    cost = build_cost(cfg)
    cfg = ReplayConfig(engine="vllm", hbm_kv_gib=hbm_blocks * BS * cost.kv_bytes_per_token / GIB,
                       **kw)
    sim = EventSim(make_workload(rows, block_size=BS), cfg, cost)
    if plain:
        sim.sched.cache_at_schedule = sim.store.full_admission = False
    sim.run()
    return sim


def test_same_step_caching_lets_a_request_admitted_later_in_the_step_hit():
    """Two 84-token prompts share 4 blocks and arrive while a long prefill runs, so one step
    admits both: with vLLM's rule the second hits the 4 blocks the first is computing in it."""
    shared = [1, 2, 3, 4]
    rows = [(0.0, 1000, 4, list(range(100, 162))), (1e-4, 84, 4, shared + [10]),
            (1e-4, 84, 4, shared + [20])]
    for plain, expected in ((False, 4), (True, 0)):
        hits = _sim(rows, 256, plain).result().requests["hit_hbm_blocks"].to_list()
        assert hits == [0, 0, expected]


def test_whole_sequence_admission_keeps_a_long_prompt_waiting():
    """HBM of 9 blocks; request 0 (40 + 40 tokens) holds 3 then 5 blocks; request 1's prompt
    (100 tokens, 7 blocks) does not fit beside it, though its first chunk (64 tokens, 4
    blocks) would: vLLM's rule admits it only after request 0 finishes, without preemption."""
    rows = [(0.0, 40, 40, [1, 2]), (0.001, 100, 4, [11, 12, 13, 14, 15, 16])]
    vllm = _sim(rows, 9, max_batched_tokens=64).result().requests
    plain = _sim(rows, 9, plain=True, max_batched_tokens=64).result().requests
    assert vllm["preemptions"].sum() == 0
    assert vllm["first_admit_s"][1] >= vllm["finish_s"][0]
    assert plain["first_admit_s"][1] < plain["finish_s"][0]


def test_replay_engine_refuses_what_it_cannot_run_and_runs_what_it_can():
    runner = CliRunner()
    r = runner.invoke(app, ["replay", "--engine", "vllm", "--dram-gib", "8", "--eviction",
                            "arc"], env=ENV)
    assert r.exit_code == 2
    assert "every tier evicts arc" in r.output and "hbm" in r.output
    r = runner.invoke(app, ["replay", "--engine", "nope"], env=ENV)
    assert r.exit_code == 2 and "vllm, vllm+lmcache" in r.output
    r = runner.invoke(app, ["replay", "--engine", "vllm", "--dram-gib", "8", "--eviction",
                            "hbm=lru,dram=arc,ssd=arc", "--mode", "cache"], env=ENV)
    assert r.exit_code == 0, r.output


def test_per_tier_evictions_follow_each_engines_knobs():
    from kvplan.engines import TierChoice, engine

    base = {"model": "m", "block_size": 512, "kv_bytes_per_token": 131_072,
            "hbm_kv_bytes": 40 * GIB, "dram_bytes": 64 * GIB, "ssd_bytes": 200 * GIB}
    lru_arc = TierChoice(**base | {"ssd_bytes": 0, "evictions": ("lru", "arc", "arc")})
    assert engine("vllm").settings(lru_arc).ok
    assert '"eviction_policy":"arc"' in engine("vllm").settings(lru_arc).command()
    mixed = TierChoice(**base | {"evictions": ("lru", "lfu", "lru")})
    broken = {c.rule for c in engine("vllm+lmcache").settings(mixed).checks if not c.ok}
    assert broken == {"one eviction per engine knob"}  # cache_policy serves CPU and disk
    lfu = TierChoice(**base | {"evictions": ("lru", "lfu", "lfu")})
    assert engine("vllm+lmcache").settings(lfu).ok
    assert "cache_policy: LFU" in engine("vllm+lmcache").settings(lfu).files[0].text


def _frame(rows: list[tuple]) -> pl.DataFrame:
    cols = ("candidate_id", "eviction", "dram_gib", "ssd_gib", "inclusive", "hbm_kv_gib",
            "replicas", "tp", "usd_per_h", "feasible")
    return pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


def test_deployable_mask_and_labelled_what_if():
    decided = _frame([(0, "arc", 64.0, 400.0, False, 20.0, 1, 1, 5.0, True),
                      (1, "lru", 64.0, 400.0, False, 20.0, 1, 1, 5.5, True),
                      (2, "fifo", 64.0, 0.0, True, 20.0, 1, 1, 6.0, True),
                      (3, "lru", 64.0, 400.0, True, 20.0, 1, 1, 6.5, True)])
    spec = PlanSpec()
    assert deployable_mask(decided, "vllm", 512, spec).to_list() == [False, False, False, True]
    assert deployable_mask(decided, "vllm+lmcache", 512, spec).to_list() == [
        False, False, False, True]  # fifo would run on LMCache's tiers, not vLLM's HBM
    plans = {p.engine: p for p in engine_plans(decided, "feasible", 512, spec)}
    assert set(plans) == {"vllm", "vllm+lmcache", "sglang-hicache", "dynamo-kvbm"}
    for p in plans.values():
        assert p.best["candidate_id"] == 3 and p.settings.ok
        assert p.what_if.startswith("what-if, not deployable on this engine: arc, exclusive")
        assert "-23.1%" in p.what_if and "#0" in p.what_if


def test_plan_engines_spec_is_checked():
    with pytest.raises(InputError, match="engines"):
        spec_from_dict({"engines": ["vllm", "nope"]})
    with pytest.raises(InputError, match="alone"):
        spec_from_dict({"engines": ["none", "vllm"]})
    assert spec_from_dict({"engines": ["none"]}).engines == ("none",)


SPACE = {"hbm_kv_gib": [20.0], "dram_gib": [0.0, 100.0], "ssd_gib": [0.0],
         "evictions": ["lru", "arc"], "inclusive": [True, False]}


def test_plan_recommends_per_engine_only_what_it_runs():
    """The free search may pick arc or exclusive tiers; per engine, never."""
    work, prices = cyclic_workload(), load_prices()
    slo = Slo(ttft_ms=800.0, percentile=90.0)
    free = run_plan(work, PlanSpec(slo=slo, space=SPACE, verify_top=0, engines=("none",)),
                    prices)
    assert free.engine_plans == []
    res = run_plan(work, PlanSpec(slo=slo, space=SPACE, verify_top=0), prices)
    assert [p.engine for p in res.engine_plans] == [
        "vllm", "vllm+lmcache", "sglang-hicache", "dynamo-kvbm"]
    for p in res.engine_plans:
        assert p.best["eviction"] == "lru" and p.best["inclusive"] and p.settings.ok
    assert res.recommendation.best["eviction"] == "lru" and res.recommendation.best["inclusive"]
    assert all(e.ok for e in res.engines)


def test_cli_plan_prints_each_engine_and_labels_the_what_if(tmp_path):
    """arc with exclusive tiers is searched (the free best may use it); per engine only lru
    with inclusive tiers runs; --engine none keeps the free search without the table."""
    from kvplan.workload import write_workload

    trace = tmp_path / "w.parquet"
    write_workload(cyclic_workload(), trace)
    out = tmp_path / "out"
    args = ["plan", "-t", str(trace), "--ttft-ms", "800", "--percentile", "90",
            "--hbm-kv-gib", "20", "--dram-gib", "0", "--dram-gib", "100", "--ssd-gib", "0",
            "--eviction", "lru", "--eviction", "arc", "--verify-top", "0"]
    r = CliRunner().invoke(app, args + ["--engine", "vllm", "--engine", "sglang-hicache",
                                        "-o", str(out)], env=ENV)
    assert r.exit_code == 0, r.output
    assert "Per engine" in r.output and "dynamo-kvbm" not in r.output.split("Per engine")[1]
    plans = pl.read_parquet(out / "engine_plans.parquet")
    assert plans["engine"].to_list() == ["vllm", "sglang-hicache"]
    assert plans["eviction"].to_list() == ["lru", "lru"] and plans["inclusive"].all()
    r = CliRunner().invoke(app, args + ["--engine", "none", "--json"], env=ENV)
    assert r.exit_code == 0, r.output
    import json

    assert json.loads(r.stdout)["engine_plans"] == []
    r = CliRunner().invoke(app, args + ["--engine", "vllm", "--engine", "none"], env=ENV)
    assert r.exit_code == 2 and r.output.startswith("Error: --engine none") and len(r.output.splitlines()) == 1
