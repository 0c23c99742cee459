"""`kvplan models` end to end through typer's runner."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from kvplan.cli.main import app

RUN = CliRunner()
ENV = {"COLUMNS": "120"}


def test_show_70b_on_h100_prints_the_numbers():
    result = RUN.invoke(app, ["models", "show", "llama-3.1-70b", "--gpu", "h100-sxm", "--json"],
                        env=ENV)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["quantity"]: r["value"] for r in data["rows"]}
    assert rows["kv_bytes_per_token"] == 327_680
    assert rows["kv_gib_at_8k"] == 2.5 and rows["kv_gib_at_32k"] == 10 and rows["kv_gib_at_128k"] == 40
    assert round(rows["weights_gb"], 1) == 141.1
    fit = {r["quantity"]: r["value"] for r in data["fit"]}
    assert fit["weights_fit_one_gpu"].startswith("no: 131.4 GiB > 79.65 GiB")
    assert fit["gpus_per_replica_tp"] == 4
    tokens = fit["kv_tokens_fit"]
    assert tokens == int(fit["kv_capacity_gib"] * 2**30 // 327_680)
    assert fit["concurrent_seqs_at_8k"] == tokens // 8192


def test_show_table_and_tp_option():
    result = RUN.invoke(app, ["models", "show", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "8"],
                        env=ENV)
    assert result.exit_code == 0, result.output
    assert "327,680" in result.stdout and "gpus_per_replica_tp" in result.stdout
    result = RUN.invoke(app, ["models", "show", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "1"],
                        env=ENV)
    assert result.exit_code == 2 and "no KV room" in result.stderr


def test_show_config_json_and_parquet(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64,
                               "intermediate_size": 128, "vocab_size": 100}))
    result = RUN.invoke(app, ["models", "show", "--config", str(cfg), "--out", str(tmp_path)],
                        env=ENV)
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(tmp_path / "model.parquet")
    assert frame.columns == ["section", "quantity", "value", "unit"]
    assert frame.filter(pl.col("quantity") == "kv_bytes_per_token")["value"][0] == str(2 * 64 * 2 * 2)


def test_bad_config_is_one_line_error(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"num_hidden_layers": -1}))
    result = RUN.invoke(app, ["models", "show", "--config", str(cfg)], env=ENV)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"Error: {cfg}: field 'num_hidden_layers': expected a positive "
                                     "integer, got -1")
    result = RUN.invoke(app, ["models", "show", "gpt-9"], env=ENV)
    assert result.exit_code == 2 and "llama-3.1-8b" in result.stderr


def test_list():
    result = RUN.invoke(app, ["models", "list", "--kv-dtype", "fp8"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "65,536" in result.stdout and "deepseek-v2" in result.stdout


def test_retention_what_if_rows_are_exact_and_labelled():
    result = RUN.invoke(app, ["models", "show", "llama-3.1-8b", "--retain", "streaming:4,2044",
                              "--json"], env=ENV)
    assert result.exit_code == 0, result.output
    rows = {r["quantity"]: r for r in json.loads(result.output)["rows"]}
    # sink 4 + window 2,044 = 2,048 tokens x 131,072 B = 0.25 GiB at every context >= 2,048
    assert rows["kv_gib_at_128k_retained"]["value"] == 0.25
    assert "changes model quality" in rows["kv_gib_at_8k_retained"]["unit"]
    h2o = RUN.invoke(app, ["models", "show", "llama-3.1-8b", "--retain", "h2o:0.25", "--json"],
                     env=ENV)
    assert {r["quantity"]: r["value"] for r in json.loads(h2o.output)["rows"]}[
        "kv_gib_at_32k_retained"] == 1.0


def test_bad_retention_is_a_usage_error():
    result = RUN.invoke(app, ["models", "show", "llama-3.1-8b", "--retain", "h2o:2"], env=ENV)
    assert result.exit_code == 2
    assert "h2o:FRAC" in result.output


def test_show_prints_the_layout_and_experts():
    res = RUN.invoke(app, ["models", "show", "qwen3-30b-a3b", "--gpu", "h100-sxm", "--tp", "2",
                           "--ep", "2"], env=ENV)
    assert res.exit_code == 0, res.output
    assert "8 of 128 routed" in res.output and "layout: tp 2 x dp 1, ep 2 (2 GPUs)" in res.output
    res = RUN.invoke(app, ["models", "show", "llama-3.1-70b", "--gpu", "h100-sxm"], env=ENV)
    assert "tp 4 chosen: the fewest GPUs of h100-sxm" in res.output
    res = RUN.invoke(app, ["models", "show", "llama-3.1-8b", "--gpu", "rtx-4090", "--tp", "2"],
                     env=ENV)
    assert res.exit_code == 2 and "rtx-4090 has 1 x NVIDIA GeForce RTX 4090" in res.output
