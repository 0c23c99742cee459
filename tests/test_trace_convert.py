"""Streamed conversion and the Mooncake fast path: same workload as the general readers."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvplan.trace.mooncake as mooncake
import kvplan.trace.table as table
from kvplan.bundled import bundled_file
from kvplan.trace import ReadOptions, read_trace
from kvplan.trace.convert import HASHES_LEAF, convert_trace
from kvplan.trace.hashing import CONTENT_FREE_BASE
from kvplan.trace.mooncake_scan import scan_mooncake
from kvplan.trace.read import stage_trace
from kvplan.workload import read_workload


def T(name):
    return bundled_file("traces", name)


ROWS, HASHES = 500, 4000


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of at most 500 requests / about 4,000 hashes, so the samples are cut many times."""
    monkeypatch.setattr(table, "ROWS_PER_CHUNK", ROWS)
    monkeypatch.setattr(table, "HASHES_PER_CHUNK", HASHES)


@pytest.mark.parametrize("name", [
    "mooncake_fast25_synthetic_trace.jsonl", "AzureLLMInferenceTrace_code_2023.csv",
    "burstgpt_sample.csv", "fastchat_dummy_conversation.json",
    "dynamo_agentic_mooncake_sample.jsonl", "tiny_chat.mooncake.jsonl"])
def test_streamed_parquet_equals_the_in_memory_workload(tmp_path, small_chunks, name):
    out = tmp_path / "w.parquet"
    staged = convert_trace(T(name), out)
    written, expected = read_workload(out), read_trace(T(name))
    assert written.table.equals(expected.table) and written.meta == expected.meta
    assert staged.num_requests == expected.num_requests
    n_chunks = len(staged.chunk_bounds())
    assert pq.ParquetFile(out).num_row_groups == n_chunks >= -(-staged.num_requests // ROWS)
    again = tmp_path / "again.parquet"
    convert_trace(T(name), again)
    assert again.read_bytes() == out.read_bytes()  # deterministic, byte for byte


def test_chunk_bounds_cover_rows_within_limits(small_chunks):
    staged = stage_trace(T("mooncake_fast25_synthetic_trace.jsonl"))
    bounds = staged.chunk_bounds()
    assert bounds[0][0] == 0 and bounds[-1][1] == staged.num_requests
    assert all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:], strict=False))
    n_blocks = np.diff(staged.offsets)
    for a, b in bounds:
        assert 0 < b - a <= ROWS
        assert staged.offsets[b] - staged.offsets[a] < HASHES + n_blocks[a:b].max()
    assert len(bounds) > staged.offsets[-1] // HASHES  # cut by hashes, not only by rows


def test_out_of_order_rows_are_gathered_per_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(table, "ROWS_PER_CHUNK", 3)
    lines = [json.dumps({"timestamp": t, "input_length": 1024 * (i % 3 + 1), "output_length": 1,
                         "hash_ids": list(range(i * 10, i * 10 + 2 * (i % 3 + 1)))})
             for i, t in enumerate([50, 10, 40, 30, 20, 0, 60, 70, 5, 90, 80])]
    src = tmp_path / "m.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "w.parquet"
    staged = convert_trace(src, out)
    assert not staged.in_order and "out-of-order" in staged.meta.notes
    assert read_workload(out).table.equals(read_trace(src).table)
    arrival = read_workload(out).table.column("arrival_s").to_numpy()
    assert arrival.tolist() == sorted(arrival.tolist())


def test_content_free_hashes_are_running_numbers_delta_encoded(tmp_path):
    out = tmp_path / "w.parquet"
    convert_trace(T("AzureLLMInferenceTrace_code_2023.csv"), out)
    w = read_workload(out)
    col = w.table.column("block_hashes").combine_chunks()
    flat = col.values.to_numpy()
    assert (flat - CONTENT_FREE_BASE).tolist() == list(range(len(flat)))
    assert len(flat) == int((w.table.column("input_tokens").to_numpy() // 16).sum())
    meta = pq.ParquetFile(out).metadata.row_group(0)
    leaf = next(meta.column(i) for i in range(meta.num_columns)
                if meta.column(i).path_in_schema == HASHES_LEAF)
    assert "DELTA_BINARY_PACKED" in leaf.encodings


def _line(d, order, ws):
    sep, colon = "," + ws, ws + ":" + ws
    body = sep.join(f'"{k}"{colon}{json.dumps(d[k], separators=(sep, colon))}' for k in order)
    return "{" + ws + body + ws + "}"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 5000), st.integers(0, 999),
                          st.booleans(), st.permutations(["timestamp", "input_length",
                                                          "output_length", "hash_ids"]),
                          st.sampled_from(["", " ", "  ", "\t"])), min_size=1, max_size=12),
       st.sampled_from(["\n", "\r\n", "\n\n"]))
def test_fast_path_reads_plain_lines_like_the_general_reader(tmp_path_factory, rows, eol):
    lines = []
    for i, (ts, length, out_len, ceil, order, ws) in enumerate(rows):
        n = (length + 511) // 512 if ceil else length // 512
        d = {"timestamp": ts, "input_length": length, "output_length": out_len,
             "hash_ids": [i * 100 + j for j in range(n)]}
        lines.append(_line(d, order, ws))
    src = tmp_path_factory.mktemp("fast") / "m.jsonl"
    src.write_text(eol.join(lines) + eol, newline="")
    assert mooncake._scan_rows(src) is not None
    fast = mooncake.read_mooncake(src)
    expected = _general(src)
    assert fast.table.equals(expected.table) and fast.meta == expected.meta


def _general(src):
    scan = mooncake._scan_rows
    mooncake._scan_rows = lambda path: None
    try:
        return mooncake.read_mooncake(src)
    finally:
        mooncake._scan_rows = scan


PLAIN = '{"timestamp": 5, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}'


@pytest.mark.parametrize("line", [
    PLAIN.replace('"timestamp": 5', '"timestamp": 5.5'),
    PLAIN.replace('"timestamp": 5', '"timestamp": 05'),
    PLAIN.replace('"timestamp": 5', '"timestamp": 1234567890123456789'),
    PLAIN.replace('"output_length": 5', '"output_length": -5'),
    PLAIN.replace('}', ', "session_id": "s1"}'),
    PLAIN.replace('"timestamp": 5', '"time\\u0073tamp": 5'),
    PLAIN.replace('"timestamp": 5', '"output_length": 5'),
    PLAIN.replace('"hash_ids": [1, 2]', '"hash_ids": [1, 2, 3]'),
    PLAIN.replace('"hash_ids": [1, 2]', '"hash_ids": [1 2]'),
    PLAIN[:-1],
    "\ufeff" + PLAIN,
    PLAIN + " x",
])
def test_fast_path_refuses_anything_but_plain_lines(tmp_path, line):
    src = tmp_path / "m.jsonl"
    src.write_text(PLAIN + "\n" + line + "\n")
    assert scan_mooncake(src, 512) is None


def test_fast_path_example():
    src = bundled_file("traces", "mooncake_fast25_synthetic_trace.jsonl")
    fields, ids, offsets = scan_mooncake(src, 512)
    assert fields.shape == (3993, 3) and offsets[-1] == len(ids) == 117_888
    first = json.loads(src.read_text().split("\n", 1)[0])
    assert ids[: offsets[1]].tolist() == first["hash_ids"][: first["input_length"] // 512]


def test_fast_path_takes_a_last_line_without_newline_and_blank_lines(tmp_path):
    src = tmp_path / "m.jsonl"
    src.write_text("\n" + PLAIN + "\n\n" + PLAIN.replace("5", "7", 1))
    fields, ids, offsets = scan_mooncake(src, 512)
    assert fields[:, 0].tolist() == [5, 7] and ids.tolist() == [1, 1] and offsets.tolist() == [
        0, 1, 2]



def test_parquet_input_converts_again_and_merges_blocks(tmp_path):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    src = T("dynamo_agentic_mooncake_sample.jsonl")
    convert_trace(src, first)
    convert_trace(first, second, opts=ReadOptions(block_size=1024))
    expected = read_trace(src, opts=ReadOptions(block_size=1024))
    got = read_workload(second)
    assert got.table.equals(expected.table) and got.block_size == 1024
