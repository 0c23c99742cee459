"""The planner end to end: a hand-known best configuration, infeasible paths, CLI and errors."""

from __future__ import annotations

import json

import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.errors import KvplanError
from kvplan.hardware.prices import load_prices
from kvplan.plan.planner import run_plan
from kvplan.plan.screen import Slo
from kvplan.plan.spec import PlanSpec, spec_from_dict
from kvplan.workload import Workload, WorkloadMeta, write_workload

ENV = {"COLUMNS": "120"}


def cyclic_workload(docs: int = 20, rounds: int = 15, doc_blocks: int = 64,
                    gap_s: float = 10.0) -> Workload:
    """Requests cycle over ``docs`` documents of ``doc_blocks`` 512-token blocks (+1 own block).

    LRU hits a document only if the cache holds the whole cycle: 20 x 65 blocks x 64 MiB
    (llama-3.1-8b bf16) = 81.25 GiB; below that, cyclic access gets no hits at all.
    """
    n = docs * rounds
    prompts = [[d * 1000 + b for b in range(doc_blocks)] + [10**9 + i]
               for i, d in enumerate(i % docs for i in range(n))]
    table = pa.table({
        "request_id": pa.array(range(n), pa.int64()),
        "session_id": pa.array(range(n), pa.int64()),
        "turn": pa.array([0] * n, pa.int32()),
        "arrival_s": pa.array([i * gap_s for i in range(n)], pa.float64()),
        "input_tokens": pa.array([len(p) * 512 for p in prompts], pa.int32()),
        "output_tokens": pa.array([16] * n, pa.int32()),
        "block_hashes": pa.array(prompts, pa.list_(pa.uint64())),
        "tool_wait_s": pa.array([None] * n, pa.float64()),
    })
    meta = WorkloadMeta(source_format="synth", source_file="cyclic", block_size=512,
                        tokenizer="none")
    return Workload(table=table, meta=meta)


SPACE = {"hbm_kv_gib": [20.0], "dram_gib": [0.0, 40.0, 100.0, 200.0], "ssd_gib": [0.0],
         "evictions": ["lru"], "inclusive": [True]}


def test_planner_picks_the_hand_known_best():
    """Only DRAM >= 81 GiB gets hits; with hits TTFT ~0.2 s, without ~2 s: DRAM 100 wins."""
    spec = PlanSpec(slo=Slo(ttft_ms=800.0, percentile=90.0), space=SPACE, verify_top=0)
    res = run_plan(cyclic_workload(), spec, load_prices())
    best = res.recommendation.best
    assert res.recommendation.feasible
    assert (best["replicas"], best["hbm_kv_gib"], best["dram_gib"], best["ssd_gib"]) == (
        1, 20.0, 100.0, 0.0)
    assert res.recommendation.runner_up["dram_gib"] == 200.0
    one = res.candidates.filter(pl.col("replicas") == 1)
    by_dram = {r["dram_gib"]: r for r in one.to_dicts()}
    assert by_dram[40.0]["hit_ratio"] == 0.0 and not by_dram[40.0]["feasible"]
    assert by_dram[100.0]["hit_ratio_dram"] == pytest.approx(14 / 15 * 64 / 65)
    assert res.curves.height > 0 and res.pareto_ttft.height >= 1


def test_no_feasible_config_reports_best_infeasible_and_what_would():
    spec = PlanSpec(slo=Slo(ttft_ms=1.0), space=SPACE, verify_top=0)
    res = run_plan(cyclic_workload(), spec, load_prices())
    assert not res.recommendation.feasible
    assert "Nothing meets the SLO" in res.recommendation.what_would
    assert set(res.candidates["infeasible_reason"]) <= {"TTFT p99 > SLO"}


def test_gpu_that_cannot_hold_the_weights_is_an_error_or_a_labelled_note():
    spec = PlanSpec(model="llama-3.1-405b", profiles=("h100-sxm",), space=SPACE, verify_top=0)
    with pytest.raises(KvplanError, match="do not fit"):
        run_plan(cyclic_workload(), spec, load_prices())


def test_empty_space_and_bad_spec_keys():
    with pytest.raises(KvplanError, match="search space is empty"):
        run_plan(cyclic_workload(), PlanSpec(space=SPACE | {"dram_gib": []}, verify_top=0),
                 load_prices())
    with pytest.raises(KvplanError, match="slo.ttft_ms"):
        spec_from_dict({"slo": {"ttft_ms": -5}})
    with pytest.raises(KvplanError, match="objective"):
        spec_from_dict({"objective": "cheapest"})


def test_cli_end_to_end_writes_files(tmp_path):
    trace = tmp_path / "w.parquet"
    write_workload(cyclic_workload(), trace)
    out = tmp_path / "out"
    args = ["plan", "-t", str(trace), "--ttft-ms", "800", "--percentile", "90",
            "--hbm-kv-gib", "20", "--dram-gib", "0", "--dram-gib", "100", "--ssd-gib", "0",
            "--eviction", "lru", "--verify-top", "0", "-o", str(out)]
    r = CliRunner().invoke(app, args, env=ENV)
    assert r.exit_code == 0, r.output
    assert "Recommendation" in r.output and "DYN_KVBM_CPU_CACHE_GB" in r.output
    for name in ("candidates", "pareto_ttft", "curves", "verified"):
        assert (out / f"{name}.parquet").exists()
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    r = CliRunner().invoke(app, args[:-2] + ["--json"], env=ENV)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["best"]["dram_gib"] == 100.0 and data["feasible"]


def test_cli_bad_inputs_one_line_errors(tmp_path):
    trace = tmp_path / "w.parquet"
    write_workload(cyclic_workload(), trace)
    prices = tmp_path / "prices.toml"
    prices.write_text("schema_version = 1\n[prices]\nusd_per_gib_hbm = 1.0\n"
                      "usd_per_gib_dram = 1.0\nusd_per_gpu_hour = 1.0\n")
    cases = [["--prices", str(prices)], ["--profile", "no-such-gpu"], ["--ttft-ms", "-1"],
             ["--objective", "fastest"]]
    for extra in cases:
        out = tmp_path / "o"
        r = CliRunner().invoke(app, ["plan", "-t", str(trace), "--verify-top", "0", "-o",
                                     str(out), *extra], env=ENV)
        assert r.exit_code == 2, (extra, r.output)
        text = r.output.strip()
        assert text.startswith("Error: ") and "\n" not in text, r.output
        assert not out.exists()


def heavy_workload(n: int = 500, blocks: int = 32, gap_s: float = 0.4) -> Workload:
    """Unshared 16,384-token prompts at 2.5 req/s: prefill alone is ~0.53 s each on one H100
    (llama-3.1-8b), so one replica is at ~133 % GPU and saturates; two are at ~67 %."""
    prompts = [[i * 1000 + b for b in range(blocks)] for i in range(n)]
    table = pa.table({
        "request_id": pa.array(range(n), pa.int64()),
        "session_id": pa.array(range(n), pa.int64()),
        "turn": pa.array([0] * n, pa.int32()),
        "arrival_s": pa.array([i * gap_s for i in range(n)], pa.float64()),
        "input_tokens": pa.array([blocks * 512] * n, pa.int32()),
        "output_tokens": pa.array([16] * n, pa.int32()),
        "block_hashes": pa.array(prompts, pa.list_(pa.uint64())),
        "tool_wait_s": pa.array([None] * n, pa.float64()),
    })
    meta = WorkloadMeta(source_format="synth", source_file="heavy", block_size=512,
                        tokenizer="none")
    return Workload(table=table, meta=meta)


def test_planner_adds_a_replica_when_one_saturates():
    space = {"replicas": [1, 2, 3], "tp": [1], "hbm_kv_gib": [20.0], "dram_gib": [0.0], "ssd_gib": [0.0],
             "evictions": ["lru"], "inclusive": [True]}
    spec = PlanSpec(slo=Slo(ttft_ms=5000.0, percentile=90.0), space=space, verify_top=0)
    res = run_plan(heavy_workload(), spec, load_prices())
    by_reps = {r["replicas"]: r for r in res.candidates.to_dicts()}
    assert by_reps[1]["infeasible_reason"] == "saturated: GPU"
    assert by_reps[1]["util_gpu"] > 1.0 > by_reps[2]["util_gpu"]
    assert by_reps[2]["feasible"] and by_reps[3]["feasible"]
    assert by_reps[2]["usd_per_h"] == pytest.approx(2 * by_reps[1]["usd_per_h"])
    rec = res.recommendation
    assert rec.feasible and rec.best["replicas"] == 2
    assert rec.runner_up["replicas"] == 3 and "replicas 2 -> 3" in rec.runner_up_diff
    assert any(r.startswith("2 replicas: the best candidate with 1") for r in rec.reasons)
    assert set(res.curves["replicas"]) == {1, 2, 3}


def test_cli_states_replicas_and_routing():
    """The console names the replica count and the routing rule, without raw column names or
    'inf' (saturated rows say so), and stays readable at 80 columns; engine commands are
    printed whole on one line, so they can be pasted."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "heavy.parquet"
        write_workload(heavy_workload(), trace)
        args = ["plan", "-t", str(trace), "--ttft-ms", "5000", "--percentile", "90",
                "--replicas", "1", "--dp", "2", "--tp", "1", "--hbm-kv-gib", "20", "--dram-gib", "0",
                "--ssd-gib", "0", "--eviction", "lru", "--verify-top", "0"]
        for width in ("120", "80"):
            r = CliRunner().invoke(app, args, env={"COLUMNS": width})
            assert r.exit_code == 0, r.output
            assert "2 replicas of h100-sxm" in r.output and "Routing: prefix affinity" in r.output
            assert "saturated" in r.output and "inf " not in r.output
            assert "ttft_" not in r.output and "True" not in r.output
            commands = [line for line in r.output.splitlines() if " --max-num-seqs 256" in line
                        or " --max-running-requests 256" in line]
            assert len(commands) == 4 and all(len(c) > int(width) for c in commands)
            assert max(len(line) for line in r.output.splitlines() if line not in commands
                       ) <= int(width)
        data = json.loads(CliRunner().invoke(app, args + ["--json"], env=ENV).stdout)
        assert data["replicas"] == 2 and data["routing"].startswith("prefix affinity")


def test_plan_searches_tp_as_a_hardware_choice():
    """Default tp grid: the fewest GPUs that hold the weights (1 for llama-3.1-8b on an H100)
    and twice that; one 2-GPU replica pays the GPU-hours of two 1-GPU replicas but tiers
    (sizes are per replica) only once."""
    space = {"replicas": [1, 2], "hbm_kv_gib": [20.0], "dram_gib": [0.0], "ssd_gib": [0.0],
             "evictions": ["lru"], "inclusive": [True]}
    spec = PlanSpec(slo=Slo(ttft_ms=5000.0, percentile=90.0), space=space, verify_top=0)
    res = run_plan(heavy_workload(), spec, load_prices())
    rows = {(r["tp"], r["replicas"]): r for r in res.candidates.to_dicts()}
    assert set(rows) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert rows[(1, 1)]["usd_per_h"] < rows[(2, 1)]["usd_per_h"] < rows[(1, 2)]["usd_per_h"]
    assert rows[(2, 1)]["util_gpu"] < rows[(1, 1)]["util_gpu"]


def test_plan_layout_the_node_cannot_hold_is_noted():
    spec = PlanSpec(space={"tp": [16], "evictions": ["lru"]}, verify_top=0)
    with pytest.raises(KvplanError, match="needs 16 GPUs in one node; h100-sxm has 8"):
        run_plan(heavy_workload(), spec, load_prices())
