"""`kvplan trace ...` end to end through typer's runner, including every error path."""

import json

import pytest
from typer.testing import CliRunner

from kvplan.bundled import bundled_file
from kvplan.cli.main import app
from kvplan.workload import read_workload

ENV = {"COLUMNS": "120"}


def run(*args):
    return CliRunner().invoke(app, list(map(str, args)), env=ENV)


def test_info_on_defaults_prints_the_table():
    r = run("trace", "info")
    assert r.exit_code == 0, r.output
    assert "3,993" in r.output and "40,148" in r.output and "0.6504" in r.output


def test_info_json_and_parquet(tmp_path):
    r = run("trace", "info", bundled_file("traces", "burstgpt_sample.csv"), "--json",
            "--out", tmp_path)
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["requests"] == 387 and d["has_content"] is False
    import polars as pl
    assert pl.read_parquet(tmp_path / "trace_info.parquet")["requests"].item() == 387


def test_info_says_no_prefix_sharing_for_lengths_only_traces():
    r = run("trace", "info", bundled_file("traces", "AzureLLMInferenceTrace_code_2023.csv"))
    assert r.exit_code == 0 and "no content" in r.output


def test_info_with_model_shows_unique_kv_footprint():
    r = run("trace", "info", "--model", "llama-3.1-8b", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["kv_bytes_per_token"] == 131072  # 32 layers x 8 kv heads x 128 x 2 (K,V) x 2 B
    assert d["unique_kv_bytes"] == 40_148 * 512 * 131072


def test_convert_writes_canonical_parquet(tmp_path):
    out = tmp_path / "w.parquet"
    r = run("trace", "convert", bundled_file("traces", "fastchat_dummy_conversation.json"),
            "-o", out, "--rate", "5", "--cv", "2", "--think-time", "exp:3", "--seed", "7",
            "--block-size", "32")
    assert r.exit_code == 0, r.output
    w = read_workload(out)
    assert w.num_requests == 1000 and w.block_size == 32
    assert "gamma(rate=5/s, cv=2)" in w.meta.arrival_process and "seed=7" in w.meta.arrival_process


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


MOON = '{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}\n'


@pytest.mark.parametrize("content,fmt,expected", [
    (MOON + "{not json\n", "auto", ":2: malformed JSON"),
    (MOON + '{"timestamp": 1, "output_length": 5, "hash_ids": [1]}\n', "auto",
     ":2: field 'input_length': missing"),
    (MOON + '{"timestamp": 1, "input_length": "x", "output_length": 5, "hash_ids": [1]}\n',
     "auto", ":2: field 'input_length': expected an integer"),
    (MOON + '{"timestamp": 1, "input_length": -5, "output_length": 5, "hash_ids": []}\n',
     "auto", ":2: field 'input_length': expected a length in 0..16,777,216"),
    (MOON + '{"timestamp": 1, "input_length": 2000, "output_length": 5, "hash_ids": [1]}\n',
     "auto", ":2: field 'hash_ids': input_length 2000 disagrees"),
    ("", "auto", "file is empty"),
    ("hello\nworld\n", "auto", "unknown trace format"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9,12,x\n", "auto",
     ":2: field 'GeneratedTokens': expected an integer"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,12,3\n", "auto",
     ":2: field 'TIMESTAMP': expected a timestamp"),
    ("Timestamp,Request tokens,Response tokens\n0.5,-3,4\n", "auto",
     ":2: field 'Request tokens': expected an integer in 0..16,777,216"),
    ('[{"conversations": [{"from": "alien", "value": "hi"}]}]', "auto",
     "record 0: conversations[0]: unknown role"),
    ('[{"conversations": [{"from": "human", "value": 3}]}]', "auto",
     "field 'value': record 0: conversations[0]: expected a string, got int"),
    ('[{"conversations": [{"from": "human", "value": "hi"}]}', "sharegpt", "malformed JSON"),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', "sharegpt",
     "no assistant turns found"),
    ('{"history": 3}', "agent", "field 'history': expected a 'history' list"),
    (MOON, "azure", "field 'TIMESTAMP': missing column"),
    (MOON, "xml", "unknown format 'xml'"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, content, fmt, expected):
    src = _write(tmp_path, "in.trace", content)
    out = tmp_path / "out" / "w.parquet"
    r = run("trace", "convert", src, "-o", out, "--format", fmt)
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], lines
    assert "Traceback" not in r.output
    assert not out.exists() and not any((tmp_path / "out").glob("*")) if out.parent.exists() \
        else True


@pytest.mark.parametrize("args,expected", [
    (["--block-size", "384"], "must divide 512"),
    (["--block-size", "0"], "--block-size must be in 1..16,777,216, got 0"),
])
def test_bad_block_size_on_mooncake(tmp_path, args, expected):
    r = run("trace", "convert", bundled_file("traces", "tiny_chat.mooncake.jsonl"), "-o",
            tmp_path / "w.parquet", *args)
    assert r.exit_code == 2 and expected in r.output and not (tmp_path / "w.parquet").exists()


@pytest.mark.parametrize("args,expected", [
    (["--sessions", "0"], "--sessions: expected a whole number >= 1, got 0"),
    (["--block-size", "0"], "--block-size: expected a whole number >= 1, got 0"),
    (["--set", "mean_turns=0.5"], "synth: mean_turns must be >= 1, got 0.5"),
])
def test_bad_synth_sizes_name_the_flag(tmp_path, args, expected):
    r = run("trace", "synth", "agent", "-o", tmp_path / "w.parquet", *args)
    assert r.exit_code == 2 and r.output == f"Error: {expected}\n", r.output
    assert not (tmp_path / "w.parquet").exists()


@pytest.mark.parametrize("args,expected", [
    (["--think-time", "weibull:3"], "bad distribution 'weibull:3'"),
    (["--rate", "0"], "--rate must be > 0"),
    (["--tokenizer", "/nonexistent/tokenizer.json"], "tokenizer file not found"),
])
def test_bad_options(tmp_path, args, expected):
    r = run("trace", "convert", bundled_file("traces", "tiny_chat.sharegpt.json"), "-o",
            tmp_path / "w.parquet", *args)
    assert r.exit_code == 2 and expected in r.output, r.output
    assert not (tmp_path / "w.parquet").exists()


def test_directory_and_missing_file(tmp_path):
    r = run("trace", "info", tmp_path)
    assert r.exit_code == 2 and "is a directory" in r.output
    r = run("trace", "info", tmp_path / "nope.jsonl")
    assert r.exit_code == 2 and "no such file" in r.output


def test_unknown_model_is_a_one_line_error():
    r = run("trace", "info", "--model", "no-such-model")
    assert r.exit_code == 2 and r.output.startswith("Error: ")


def test_truncated_single_line_names_line_1(tmp_path):
    bad = tmp_path / "one.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 100\n')
    result = CliRunner().invoke(app, ["trace", "info", str(bad)], env={"COLUMNS": "120"})
    assert result.exit_code == 2
    assert f"{bad}:1: malformed JSON" in result.output
