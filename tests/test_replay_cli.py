"""`kvplan replay` end to end through typer's runner, and its error paths."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from event_helpers import head
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.trace import load_workload
from kvplan.workload import write_workload

ENV = {"COLUMNS": "160"}


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "small.parquet"
    write_workload(head(load_workload(), 150), path)
    return path


def _run(*args: str):
    return CliRunner().invoke(app, ["replay", *args], env=ENV)


def test_no_arguments_runs_the_bundled_trace_and_prints_a_summary():
    res = _run()
    assert res.exit_code == 0, res.output
    assert "mooncake_fast25_synthetic_trace.jsonl" in res.output
    assert "TTFT p50" in res.output and "3,993 of 3,993" in res.output


def test_compare_runs_variants_side_by_side_and_writes_parquet(small_trace, tmp_path):
    out = tmp_path / "out"
    res = _run("--trace", str(small_trace), "--dram-gib", "64", "--ssd-gib", "256",
               "--compare", "eviction=lru,s3fifo,belady", "-o", str(out))
    assert res.exit_code == 0, res.output
    for name in ("eviction=lru", "eviction=s3fifo", "eviction=belady", "offline oracle"):
        assert name in res.output
    run = pq.read_table(out / "run.parquet")
    assert run.column("variant").to_pylist() == ["eviction=lru", "eviction=s3fifo",
                                                 "eviction=belady"]
    meta = pq.read_schema(out / "requests.parquet").metadata
    configs = json.loads(meta[b"kvplan.replay_configs"])
    assert configs["eviction=s3fifo"]["eviction_dram"] == "s3fifo"
    assert pq.read_table(out / "requests.parquet").num_rows == 3 * 150
    assert "t_s" in pq.read_table(out / "timeseries.parquet").column_names


def test_json_output(small_trace):
    res = _run("--trace", str(small_trace), "--json", "--prefetch", "lookahead",
               "--dram-gib", "64", "--eviction", "hbm=lru,dram=fifo")
    assert res.exit_code == 0, res.output
    (variant,) = json.loads(res.output)
    assert variant["config"]["eviction_dram"] == "fifo"
    assert variant["run"]["finished"] == 150


def test_same_inputs_give_byte_identical_parquet(small_trace, tmp_path):
    for d in ("a", "b"):
        res = _run("--trace", str(small_trace), "--dram-gib", "64", "--ssd-gib", "256",
                   "--prefetch", "lookahead", "-o", str(tmp_path / d))
        assert res.exit_code == 0, res.output
    for name in ("requests", "run", "timeseries"):
        a = (tmp_path / "a" / f"{name}.parquet").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.parquet").read_bytes()


def test_cache_mode_runs(small_trace):
    res = _run("--trace", str(small_trace), "--mode", "cache", "--dram-gib", "64", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["run"]["mode"] == "cache"


@pytest.mark.parametrize(("args", "message"), [
    (["--eviction", "mru"], "unknown eviction policy 'mru'; valid:"),
    (["--prefetch", "psychic"], "unknown prefetch policy 'psychic'"),
    (["--hbm-kv-gib", "0.5"], "HBM too small: request"),
    (["--compare", "colour=red"], "--compare: expected KEY=V1,V2"),
    (["--eviction", "gpu=lru"], "--eviction: expected NAME"),
    (["--mode", "fast"], "--mode: expected one of event, cache, got 'fast'"),
    (["--max-seqs", "0"], "--max-seqs: expected a whole number >= 1, got 0"),
    (["--write", "sometimes"], "--write: expected one of write-through, "),
])
def test_bad_input_is_one_line_exit_2_and_no_output(small_trace, tmp_path, args, message):
    out = tmp_path / "out"
    res = _run("--trace", str(small_trace), "-o", str(out), *args)
    assert res.exit_code == 2
    assert message in res.output
    assert res.output.strip().count("\n") == 0 and "Traceback" not in res.output
    assert not out.exists() or not any(out.iterdir())


def test_zero_bandwidth_link_is_refused(small_trace, tmp_path):
    import dataclasses

    from kvplan.hardware.profile import load_profile, write_profile

    prof = load_profile("h100-sxm")
    broken = dataclasses.replace(prof, name="broken",
                                 ssd=dataclasses.replace(prof.ssd, read_gbps=0.0))
    path = tmp_path / "broken.toml"
    write_profile(broken, path)
    res = _run("--trace", str(small_trace), "--profile", str(path), "--ssd-gib", "100")
    assert res.exit_code == 2
    assert "link ssd_read has zero bandwidth" in res.output


def test_layout_is_printed_and_dp_routes_over_replicas(small_trace, tmp_path):
    res = _run("--trace", str(small_trace))
    assert res.exit_code == 0, res.output
    assert "layout: tp 1 x dp 1 (1 GPU)" in res.output and "tp 1 chosen" in res.output
    out = tmp_path / "dp"
    res = _run("--trace", str(small_trace), "--dp", "2", "--tp", "1", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "all replicas" in res.output and "replica 2" in res.output
    assert "routed to replicas by prefix affinity" in res.output and "chosen" not in res.output
    req = pq.read_table(out / "requests.parquet").to_pydict()
    assert sorted(set(req["replica"])) == [0, 1] and len(req["replica"]) == 150
    data = json.loads(_run("--trace", str(small_trace), "--dp", "2", "--json").stdout)
    pooled, one, two = (d["run"] for d in data)
    assert pooled["finished"] == one["finished"] + two["finished"] == 150
    assert data[0]["layout"] == {"tp": 1, "dp": 2, "ep": 1, "expert_imbalance": 1.0}


def test_layouts_the_hardware_cannot_hold_are_one_line_errors(small_trace):
    res = _run("--trace", str(small_trace), "--tp", "16")
    assert res.exit_code == 2 and "--tp 16 needs 16 GPUs in one node; h100-sxm has 8" in res.output
    res = _run("--trace", str(small_trace), "--ep", "2", "--tp", "2")
    assert res.exit_code == 2 and "llama-3.1-8b has no experts" in res.output
    res = _run("--trace", str(small_trace), "-m", "mixtral-8x7b", "--tp", "2", "--ep", "2")
    assert res.exit_code == 0, res.output
    assert "layout: tp 2 x dp 1, ep 2 (2 GPUs)" in res.output
