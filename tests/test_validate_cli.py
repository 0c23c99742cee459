"""`kvplan validate` end to end through typer's runner at a fixed width."""

import json

import polars as pl
import pytest
from typer.testing import CliRunner
from validate_samples import VLLM

from kvplan.cli.main import app
from kvplan.validate.metrics import METRICS

ENV = {"COLUMNS": "120"}


def _run(*args):
    return CliRunner().invoke(app, ["validate", *args], env=ENV)


def test_default_replays_the_bundled_run():
    res = _run()
    assert res.exit_code == 0, res.output
    out = res.output
    assert "bundled engine_runs/vllm-0.19_rtx4090_llama-3.1-8b (vLLM 0.19.0)" in out
    assert "llama-3.1-8b on rtx-4090" in out
    for label in ("TTFT mean ms", "TPOT p99 ms", "e2e p90 ms", "makespan s",
                  "throughput req/s", "TTFT per-request median |error|"):
        assert label in out
    assert "65,457" in out  # real TTFT mean (ms)
    assert "KV pool: 2,588 blocks x 16 tokens = 41,408 tokens (5.05 GiB), from meta.json" in out
    assert "Verdict:" in out and "note: engine monotonic clock" in out


def test_json_document():
    res = _run("--json", "--tolerance", "0.5")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [m["metric"] for m in doc["metrics"]] == list(METRICS)
    assert set(doc["metrics"][0]) == {"metric", "real", "sim", "error_frac"}
    assert doc["per_request"]["requests_compared"] == 300
    assert doc["settings"]["kv_blocks"] == 2588 and doc["settings"]["max_seqs"] == 256
    assert doc["verdict"] == {"tolerance": 0.5, "within": True, "outside": []}
    assert doc["run"]["format"] == "run-folder" and doc["run"]["failed"] == 0


def test_out_dir_files(tmp_path):
    out = tmp_path / "v"
    res = _run("-o", str(out))
    assert res.exit_code == 0, res.output
    metrics = pl.read_parquet(out / "validation.parquet")
    assert metrics.columns == ["part", "profile", "metric", "real", "sim", "error_frac"]
    assert metrics["metric"].to_list() == list(METRICS)
    per = pl.read_parquet(out / "requests.parquet")
    assert per.height == 300 and {"real_ttft_ms", "sim_ttft_ms", "ttft_error_frac",
                                  "sim_finished", "sim_preemptions"} <= set(per.columns)
    assert (out / "validation.png").read_bytes()[:4] == b"\x89PNG"


def test_self_replay_validates_at_zero_error(tmp_path):
    """A run whose 'measurements' are kvplan's own replay validates at (float-print) zero."""
    out = tmp_path / "self"
    assert _run("-o", str(out)).exit_code == 0
    per = pl.read_parquet(out / "requests.parquet")
    csv = tmp_path / "self.csv"
    per.select("arrival_s", "input_tokens", "output_tokens",
               pl.col("sim_ttft_ms").alias("ttft_ms"), pl.col("sim_e2e_ms").alias("e2e_ms")
               ).write_csv(csv, float_precision=12)
    res = _run(str(csv), "--model", "llama-3.1-8b", "--profile", "rtx-4090", "--max-seqs", "256",
               "--max-batched-tokens", "2048", "--block-size", "16", "--kv-pool-tokens", "41408",
               "--json", "--tolerance", "1e-6")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["verdict"]["within"], doc["verdict"]
    assert max(abs(m["error_frac"]) for m in doc["metrics"]) < 1e-6


@pytest.mark.parametrize("args,message", [
    (["--model", "llama-3.1-70b"], "field '--model': cannot replay llama-3.1-70b on rtx-4090"),
    (["--tp", "2"], "--tp 2 needs 2 GPUs in one node; rtx-4090 has 1"),
    (["--fit-frac", "1.5", "--fit"], "--fit-frac must be between 0 and 1"),
    (["--profile", "nope"], "unknown hardware profile 'nope'"),
])
def test_unreplayable_runs_fail_in_one_line_without_output(tmp_path, args, message):
    out = tmp_path / "never"
    res = _run(*args, "-o", str(out))
    assert res.exit_code == 2
    assert message in res.output and res.output.count("\n") == 1, res.output
    assert not out.exists()


def test_missing_field_and_zero_successful(tmp_path):
    no_ttft = tmp_path / "a.json"
    no_ttft.write_text(json.dumps({k: v for k, v in VLLM.items() if k != "start_times"}))
    res = _run(str(no_ttft), "--profile", "rtx-4090", "-o", str(tmp_path / "o1"))
    assert res.exit_code == 2 and f"{no_ttft}: field 'start_times'" in res.output
    all_failed = tmp_path / "b.json"
    all_failed.write_text(json.dumps({**VLLM, "errors": ["boom"] * 4}))
    res = _run(str(all_failed), "--profile", "rtx-4090", "-o", str(tmp_path / "o2"))
    assert res.exit_code == 2 and "no successful request" in res.output
    assert res.output.count("\n") == 1
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("flags", [["-o", "{f}"], ["-o", "{f}/sub"], ["--fit", "--fit-out",
                                                                      "{f}/x.toml"]])
def test_output_path_under_a_file(tmp_path, flags):
    f = tmp_path / "file"
    f.write_text("x")
    res = _run(*[a.format(f=f) for a in flags])
    assert res.exit_code == 2 and f"'{f}' is a file" in res.output
    assert res.output.count("\n") == 1
