"""Every input defect a fuzzing pass found (issue 13) as an end-to-end test.

Each bad input goes through the CLI (typer's runner, fixed width): exit code 2, one line
naming the file and the line or field, and no output file (or temporary file) left behind.
Inputs that used to be accepted and written wrong (wrapped lengths, NaN arrivals, huge
declared lengths) are errors now; inputs that used to be refused for no reason (a UTF-8 BOM,
a first record longer than the detection prefix) are read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time

import fuzz_inputs as F
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kvplan.bundled import bundled_file
from kvplan.cli.main import app
from kvplan.trace import detect, load_workload, read_trace
from kvplan.workload import read_workload
from kvplan.workload.schema import META_KEY

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV = {"COLUMNS": "120"}
MOON = {"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def convert_fails(tmp_path, src, *expected, fmt="auto"):
    """``trace convert`` of ``src`` fails cleanly with every piece of ``expected``."""
    out = tmp_path / "out" / "w.parquet"
    r = run("trace", "convert", src, "-o", out, "--format", fmt)
    assert_one_line_error(r, str(src), *expected)
    assert not out.exists() and not list(tmp_path.rglob(".*.tmp"))


def assert_one_line_error(r, *expected):
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    assert len(lines[0]) < 400, lines[0]
    for piece in expected:
        assert piece in lines[0], (piece, lines[0])


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def jsonl(*records):
    return "".join(json.dumps(r) + "\n" for r in records)


# ---- crashes that are one-line errors now -------------------------------------------------

def test_conversation_with_an_empty_message_list(tmp_path):
    one = write(tmp_path, "a.json", '[{"conversations": []}]')
    convert_fails(tmp_path, one, "no assistant turns found")
    two = write(tmp_path, "b.jsonl", jsonl({"messages": []}, {"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}))
    w = read_trace(two)
    assert w.num_requests == 1 and "1 record(s) without an assistant turn" in w.meta.notes


def test_content_part_text_that_is_not_a_string(tmp_path):
    src = write(tmp_path, "a.jsonl", jsonl({"messages": [
        {"role": "user", "content": [{"type": "text", "text": 3}]},
        {"role": "assistant", "content": "x"}]}))
    convert_fails(tmp_path, src, ":1: field 'content[0].text'", "expected a string, got int")


@pytest.mark.parametrize("make", [
    lambda deep: deep,                                              # the whole file
    lambda deep: '{"messages": ' + deep + "}\n",                    # inside a JSONL record
    lambda deep: '[{"conversations": ' + deep + "}]",               # inside a JSON array
    lambda deep: '{"history": ' + deep + ', "info": {}}',          # a .traj
])
def test_json_nested_100000_deep(tmp_path, make):
    deep = "[" * 100_000 + "]" * 100_000
    src = write(tmp_path, "deep.json", make(deep))
    convert_fails(tmp_path, src, "nested too deeply")


TRAJ = {"history": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                    {"role": "assistant", "content": "a"}], "info": {}}


@pytest.mark.parametrize("info,field", [
    (3, "info"), ([1], "info"), ({"model_stats": "x"}, "info.model_stats"),
    ({"model_stats": {"tokens_sent": [1]}}, "info.model_stats.tokens_sent"),
    ({"model_stats": {"tokens_sent": "e"}}, "info.model_stats.tokens_sent"),
    ({"model_stats": {"tokens_sent": math.inf}}, "info.model_stats.tokens_sent"),
    ({"model_stats": {"tokens_sent": 5, "api_calls": -1}}, "info.model_stats.api_calls"),
])
def test_traj_info_of_the_wrong_type(tmp_path, info, field):
    src = write(tmp_path, "run.traj", json.dumps(dict(TRAJ, info=info)))
    convert_fails(tmp_path, src, f"field '{field}'")


@pytest.mark.parametrize("change,field", [
    ({"tool_wait_ms": ""}, "tool_wait_ms"), ({"tool_wait_ms": {}}, "tool_wait_ms"),
    ({"tool_wait_ms": "-5"}, "tool_wait_ms"), ({"tool_wait_ms": -5}, "tool_wait_ms"),
    ({"session_id": [1]}, "session_id"), ({"session_id": 1.5}, "session_id"),
    ({"input_length": 2**64}, "input_length"), ({"output_length": 2**64 + 5}, "output_length"),
    ({"hash_ids": [1, 2**64]}, "hash_ids"), ({"hash_ids": [1, -2]}, "hash_ids"),
    ({"hash_ids": [1, 2.5]}, "hash_ids"), ({"timestamp": math.nan}, "timestamp"),
    ({"timestamp": math.inf}, "timestamp"), ({"timestamp": "3"}, "timestamp"),
])
def test_mooncake_fields_of_the_wrong_type_or_range_name_the_line(tmp_path, change, field):
    src = write(tmp_path, "m.jsonl", jsonl(MOON, MOON | {"session_id": "s"}, MOON | change))
    convert_fails(tmp_path, src, ":3:", f"field '{field}'")


def test_float_hash_ids_get_a_line_number(tmp_path):
    src = write(tmp_path, "m.jsonl", jsonl(MOON, MOON | {"hash_ids": [1.0, 2.0]}))
    convert_fails(tmp_path, src, ":2: field 'hash_ids'")


@pytest.mark.parametrize("header,row,field", [
    ("TIMESTAMP,ContextTokens,GeneratedTokens", "2023-11-16 18:17:03.1,1000000000000,10",
     "ContextTokens"),
    ("Timestamp,Request tokens,Response tokens", "0.5,1000000000000,4", "Request tokens"),
    ("Timestamp,Request tokens,Response tokens", "0.5,9223372036854775807,4", "Request tokens"),
])
def test_csv_row_declaring_huge_lengths_fails_fast(tmp_path, header, row, field):
    src = write(tmp_path, "t.csv", f"{header}\n{row.split(',')[0]},10,4\n{row}\n")
    t = time.perf_counter()
    convert_fails(tmp_path, src, ":3:", f"field '{field}'", "16,777,216")
    assert time.perf_counter() - t < 5


def test_int64_max_lengths_do_not_overflow_the_running_sum(tmp_path):
    big = 2**63 - 1
    src = write(tmp_path, "m.jsonl", jsonl(MOON | {"input_length": big, "hash_ids": []},
                                           MOON | {"input_length": big, "hash_ids": []}))
    convert_fails(tmp_path, src, ":1: field 'input_length'")


# ---- workload Parquet ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def canonical():
    w = read_trace(bundled_file("traces", "tiny_chat.mooncake.jsonl"))
    return w.table, dataclasses.asdict(w.meta)


def parquet(tmp_path, table, meta, name="w.parquet"):
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    path = tmp_path / name
    pq.write_table(table.replace_schema_metadata({META_KEY: raw}), path)
    return path


@pytest.mark.parametrize("meta,expected", [
    (b"not json", "metadata is not UTF-8 JSON"),
    (b"\xff\xfe", "metadata is not UTF-8 JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (b"[" * 100_000, "metadata is not UTF-8 JSON"),
])
def test_workload_metadata_that_is_not_a_json_object(tmp_path, canonical, meta, expected):
    convert_fails(tmp_path, parquet(tmp_path, canonical[0], meta), expected)


@pytest.mark.parametrize("change,expected", [
    ({"colour": "red"}, "field 'kvplan.workload.colour': unknown metadata key"),
    ({"block_size": None}, "field 'kvplan.workload.block_size'"),
    ({"block_size": "512"}, "field 'kvplan.workload.block_size'"),
    ({"block_size": 2**40}, "field 'block_size': expected an integer in 1..16,777,216"),
    ({"has_content": 1}, "field 'kvplan.workload.has_content'"),
    ({"extra": {"a": 1}}, "field 'kvplan.workload.extra'"),
])
def test_workload_metadata_with_wrong_keys_or_types(tmp_path, canonical, change, expected):
    table, meta = canonical
    convert_fails(tmp_path, parquet(tmp_path, table, meta | change), expected)


def test_workload_metadata_missing_a_key(tmp_path, canonical):
    table, meta = canonical
    meta = {k: v for k, v in meta.items() if k != "block_size"}
    convert_fails(tmp_path, parquet(tmp_path, table, meta),
                  "field 'kvplan.workload.block_size': metadata key missing")


def _with(table, name, values, type_=None):
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, pa.array(values, type=type_ or table.schema.field(i).type))


@pytest.mark.parametrize("name,values,type_,expected", [
    ("input_tokens", ["a", "b", "c"], pa.string(), "field 'input_tokens': column of type string"),
    ("input_tokens", [2**40, 1, 1], pa.int64(), "field 'input_tokens': column of type int64"),
    ("arrival_s", [0.0, math.nan, 9.0], None, "row 1: expected a finite number"),
    ("arrival_s", [5.0, 1.0, 9.0], None, "row 1: arrival before the previous row's"),
    ("request_id", [0, 0, 1], None, "field 'request_id': row 1: duplicate request id"),
    ("output_tokens", [5, -3, 5], None, "field 'output_tokens': row 1: expected tokens"),
    ("tool_wait_s", [None, -1.0, None], None, "field 'tool_wait_s': row 1"),
    ("block_hashes", [[1], [2], [3]], None, "field 'block_hashes': row 0: expected input_tokens"),
    ("block_hashes", [[1, 2, None], [1, 2, 3, 4], [1, 2, 3, 4]], None,
     "field 'block_hashes': row 0: missing hash"),
])
def test_workload_columns_out_of_range_or_uncastable(tmp_path, canonical, name, values, type_,
                                                     expected):
    table, meta = canonical
    convert_fails(tmp_path, parquet(tmp_path, _with(table, name, values, type_), meta), expected)


def test_workload_with_zero_rows(tmp_path, canonical):
    table, meta = canonical
    convert_fails(tmp_path, parquet(tmp_path, table.slice(0, 0), meta), "no requests")


def test_corrupt_parquet_is_one_line(tmp_path, canonical):
    data = parquet(tmp_path, *canonical).read_bytes()
    for i, corrupt in enumerate([data[: len(data) // 2], data[:8] + b"\x00" * 64 + data[72:],
                                 data[:-12] + b"\xff" * 8 + data[-4:]]):
        src = write(tmp_path, f"c{i}.parquet", corrupt)
        r = run("trace", "convert", src, "-o", tmp_path / "o.parquet")
        assert_one_line_error(r, str(src))


@pytest.mark.parametrize("name,values", [("arrival_s", [0.0, math.nan, 1.0]),
                                         ("output_tokens", [5, -1, 5])])
def test_replay_refuses_a_workload_it_cannot_trust(tmp_path, canonical, name, values):
    table, meta = canonical
    src = parquet(tmp_path, _with(table, name, values), meta)
    r = run("replay", "--trace", src, "--mode", "cache", "-o", tmp_path / "out")
    assert_one_line_error(r, str(src), f"field '{name}'")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    r = run("replay", "--trace", parquet(tmp_path, table, meta | {"block_size": None}, "b.pq"),
            "--mode", "cache")
    assert_one_line_error(r, "block_size")


# ---- accepted and written wrong before ----------------------------------------------------

@pytest.mark.parametrize("value", [4294967297, 2854775807, 2**31, 2**24 + 1])
def test_lengths_beyond_the_limit_are_errors_not_wrapped(tmp_path, value):
    src = write(tmp_path, "m.jsonl", jsonl(MOON | {"output_length": value}))
    convert_fails(tmp_path, src, ":1: field 'output_length'", "16,777,216")


def test_tiny_files_declaring_huge_lengths_fail_at_once(tmp_path):
    burst = write(tmp_path, "b.csv", "Timestamp,Request tokens,Response tokens\n0,2147483648,1\n")
    assert len(burst.read_bytes()) <= 57
    rows = "".join(f"2023-11-16 18:17:{i:02d}.5,2147483647,2147483647\n" for i in range(12))
    azure = write(tmp_path, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + rows)
    for src in (burst, azure):
        t = time.perf_counter()
        convert_fails(tmp_path, src, ":2:", "per-request token limit")
        assert time.perf_counter() - t < 5


def test_at_the_limit_a_request_is_read(tmp_path):
    src = write(tmp_path, "b.csv", f"Timestamp,Request tokens,Response tokens\n0,{2**24},{2**24}\n")
    w = read_trace(src)
    assert w.table.column("input_tokens")[0].as_py() == 2**24
    assert len(w.table.column("block_hashes")[0]) == 2**24 // 16


@pytest.mark.parametrize("header,rows,field,line", [
    ("Timestamp,Request tokens,Response tokens", ["0.5,10,4", "nan,10,4"], "Timestamp", 3),
    ("Timestamp,Request tokens,Response tokens", ["0.5,10,4", "inf,10,4"], "Timestamp", 3),
    ("Timestamp,Request tokens,Response tokens", ["0.5,10,4", "1e300,10,4"], "Timestamp", 3),
    ("TIMESTAMP,ContextTokens,GeneratedTokens",
     ["2023-11-16 18:17:03.1,10,4", "9999-12-31 23:59:59,10,4"], "TIMESTAMP", 3),
])
def test_timestamps_nan_infinite_or_far_away(tmp_path, header, rows, field, line):
    src = write(tmp_path, "t.csv", "\n".join([header, *rows]) + "\n")
    convert_fails(tmp_path, src, f":{line}: field '{field}'")


def test_mooncake_timestamps_spanning_too_long(tmp_path):
    src = write(tmp_path, "m.jsonl", jsonl(MOON, MOON | {"timestamp": 1e300}))
    convert_fails(tmp_path, src, ":2: field 'timestamp'", "spanning at most")


# ---- messages -----------------------------------------------------------------------------

def test_unreadable_parquet_is_one_line(tmp_path):
    src = write(tmp_path, "x.parquet", b"PAR1" + b"\x00" * 100 + b"PAR1")
    convert_fails(tmp_path, src, "not a readable Parquet file")


def test_a_huge_bad_csv_cell_is_echoed_cut_short(tmp_path):
    src = write(tmp_path, "t.csv", "Timestamp,Request tokens,Response tokens\n0.5,"
                + "x" * 50_000 + ",4\n")
    convert_fails(tmp_path, src, ":2: field 'Request tokens'", '"xxx')


def test_unterminated_string_message_has_no_doubled_word(tmp_path):
    src = write(tmp_path, "m.jsonl", json.dumps(MOON) + '\n{"timestamp": "abc\n')
    r = run("trace", "convert", src, "-o", tmp_path / "o.parquet")
    assert_one_line_error(r, ":2: malformed JSON (Unterminated string starting at column")
    assert "at at" not in r.output


@pytest.mark.parametrize("text,expected", [
    ("time,prompt,answer\n1,2,3\n", "unknown CSV header \"time,prompt,answer\""),
])
def test_a_csv_with_a_wrong_header_names_the_header_found(tmp_path, text, expected):
    src = write(tmp_path, "t.csv", text)
    convert_fails(tmp_path, src, ":1:", expected, "TIMESTAMP,ContextTokens,GeneratedTokens")
    convert_fails(tmp_path, src, "field 'TIMESTAMP'", "'time,prompt,answer'", fmt="azure")


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("name", [
    "tiny_chat.sharegpt.json", "tiny_chat.openai.jsonl", "tiny_chat.mooncake.jsonl",
    "dynamo_agentic_mooncake_sample.jsonl", "openai_tool_calls_sample.jsonl",
    "fastchat_mt_bench_question.jsonl", "sweagent_demo_marshmallow-code__marshmallow-1867.traj.json",
    "burstgpt_sample.csv", "AzureLLMInferenceTrace_code_2023.csv",
])
def test_a_utf8_bom_is_accepted_everywhere(tmp_path, name):
    original = bundled_file("traces", name)
    src = write(tmp_path, name, BOM + original.read_bytes())
    a, b = load_workload(original), load_workload(src)
    assert a.table.equals(b.table) and a.meta.source_format == b.meta.source_format


def test_plain_mooncake_with_a_bom_stays_on_the_fast_path(tmp_path):
    from kvplan.trace import mooncake
    src = write(tmp_path, "m.jsonl", BOM + jsonl(MOON, MOON).encode())
    assert mooncake._scan_rows(src) is not None


def test_model_config_and_profile_with_a_bom(tmp_path):
    from kvplan.hardware.profile import load_profile
    from kvplan.model.spec import load_model
    cfg = write(tmp_path, "config.json", BOM + bundled_file("traces", "../kvplan/model/presets/"
                                                              "llama-3.1-8b.json").read_bytes())
    assert load_model(str(cfg)).num_layers == 32
    prof = write(tmp_path, "p.toml", BOM + bundled_file("hwprofiles", "h100-sxm.toml").read_bytes())
    assert load_profile(str(prof)).name == "h100-sxm"


def test_detection_finds_a_first_record_longer_than_its_first_read(tmp_path, monkeypatch):
    monkeypatch.setattr(detect, "_PREFIX_BYTES", 64)
    rec = {"conversations": [{"from": "human", "value": "word " * 400},
                             {"from": "gpt", "value": "ok"}]}
    for name, text in [("a.json", json.dumps([rec, rec], indent=1)),
                       ("b.jsonl", jsonl(rec, rec)),
                       ("c.traj", json.dumps(dict(TRAJ, history=TRAJ["history"] * 50), indent=2))]:
        src = write(tmp_path, name, text)
        assert detect.detect_format(src) == ("agent" if name == "c.traj" else "sharegpt")
    bad = write(tmp_path, "d.json", "[" + json.dumps(rec)[:-3] + "!!}]")
    with pytest.raises(Exception, match="malformed JSON"):
        detect.detect_format(bad)


# ---- profiles, prices and model configs -----------------------------------------------------

PROFILE = bundled_file("hwprofiles", "h100-sxm.toml").read_text()
PRICES = bundled_file("hwprofiles", "prices.toml").read_text()


def _toml(text, **changes):
    doc = tomllib.loads(text)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = doc
        for p in parents:
            node = node[p]
        node[key] = value
    return F.toml_text(doc)


@pytest.mark.parametrize("text,field", [
    (_toml(PROFILE, gpu=3), "gpu"),
    (_toml(PRICES, prices=[1, 2]), "prices"),
    (_toml(PRICES, sources=5), "sources"),
    (_toml(PRICES, dates=[[1]]), "dates"),
    (_toml(PROFILE, gpu__hbm_gib=10**400), "gpu.hbm_gib"),
    (_toml(PROFILE, kind="calibrated", curves={"h2d": 3}), "curves.h2d"),
    (_toml(PROFILE, kind="calibrated", curves={"h2d": {"sizes_bytes": [1, 2],
                                                       "bw_gbps": [1, 2**2000]}}),
     "curves.h2d.bw_gbps"),
    (PROFILE.replace("hbm_gib = 79.65", "hbm_gib = " + "[" * 5000 + "]" * 5000), None),
    (PROFILE.replace("hbm_gib = 79.65", "hbm_gib = " + "7" * 5000), None),
])
def test_bad_profiles_and_price_tables(tmp_path, text, field):
    src = write(tmp_path, "p.toml", text)
    r = run("profiles", "validate", src)
    assert_one_line_error(r, str(src), *([f"field '{field}'"] if field else []))


@pytest.mark.parametrize("change,expected", [
    ({"text_config": 3, "num_hidden_layers": None}, "field 'text_config'"),
    ({"quantization_config": [1]}, "field 'quantization_config'"),
    ({"_kvplan": "x"}, "field '_kvplan'"),
    ({"torch_dtype": ["bf16"]}, "field 'torch_dtype'"),
    ({"num_key_value_heads": 0}, "field 'num_key_value_heads'"),
    ({"num_hidden_layers": 10**12}, "field 'num_hidden_layers': expected at most 10,000"),
    ({"head_dim": None, "num_attention_heads": 8192}, "field 'head_dim'"),
    ({"model_type": "gemma3_text", "sliding_window_pattern": 0},
     "field 'sliding_window_pattern'"),
    ({"layer_types": "sliding_attention"}, "field 'layer_types'"),
])
def test_bad_model_configs(tmp_path, change, expected):
    cfg = json.loads(bundled_file("traces", "../kvplan/model/presets/gemma-2-27b.json").read_text())
    cfg = {k: v for k, v in (cfg | change).items() if v is not None}
    src = write(tmp_path, "config.json", json.dumps(cfg))
    r = run("models", "show", "--config", src)
    assert_one_line_error(r, str(src), expected)


@pytest.mark.parametrize("data", [b'{"num_hidden_layers": 2, "x": "\xff"}', b"[" * 100_000])
def test_model_config_not_utf8_or_too_deep(tmp_path, data):
    src = write(tmp_path, "config.json", data)
    assert_one_line_error(run("models", "show", "--config", src), str(src))


def test_the_canonical_round_trip_still_holds(tmp_path):
    src = bundled_file("traces", "tiny_chat.openai.jsonl")
    out = tmp_path / "w.parquet"
    assert run("trace", "convert", src, "-o", out).exit_code == 0
    assert read_workload(out).table.equals(read_trace(src).table)
