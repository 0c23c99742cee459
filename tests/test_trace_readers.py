"""Every reader on the bundled samples (copied from ../shared/traces or synthesized)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from kvplan.bundled import bundled_file
from kvplan.errors import KvplanError
from kvplan.trace import ReadOptions, detect_format, load_workload, read_trace, trace_info
from kvplan.workload import read_workload, schema, write_workload


def T(name):
    return bundled_file("traces", name)


def _pattern(w):
    """Block hashes renamed to dense ids by first appearance: the sharing structure."""
    ids: dict[int, int] = {}
    return [[ids.setdefault(h, len(ids)) for h in row] for row in
            w.table.column("block_hashes").to_pylist()]


@pytest.mark.parametrize("name,fmt", [
    ("mooncake_fast25_synthetic_trace.jsonl", "mooncake"),
    ("AzureLLMInferenceTrace_code_2023.csv", "azure"),
    ("fastchat_dummy_conversation.json", "sharegpt"),
    ("fastchat_mt_bench_question.jsonl", "sharegpt"),
    ("sweagent_demo_marshmallow-code__marshmallow-1867.traj.json", "agent"),
    ("burstgpt_sample.csv", "burstgpt"),
    ("dynamo_agentic_mooncake_sample.jsonl", "agent"),
    ("openai_tool_calls_sample.jsonl", "agent"),
    ("tiny_chat.sharegpt.json", "sharegpt"),
    ("tiny_chat.mooncake.jsonl", "mooncake"),
])
def test_detect_by_content(name, fmt, tmp_path):
    assert detect_format(T(name)) == fmt
    renamed = tmp_path / "trace.dat"  # the extension does not matter
    renamed.write_bytes(T(name).read_bytes())
    assert detect_format(renamed) == fmt


def test_default_workload_is_the_mooncake_sample():
    w = load_workload()
    info = trace_info(w)
    assert (info.requests, w.block_size, info.total_blocks, info.unique_blocks) == (
        3993, 512, 117_888, 40_148)
    assert info.input_tokens_total == 61_194_628
    assert w.table.column("arrival_s").to_numpy()[-1] == pytest.approx(1022.025)
    assert np.all(np.diff(w.table.column("arrival_s").to_numpy()) >= 0)
    assert info.prefix_reuse == pytest.approx((117_888 - 40_148) * 512 / 61_194_628)


def test_mooncake_first_request_hashes_are_chained_ids():
    w = load_workload()
    row = w.table.slice(0, 1).to_pylist()[0]
    assert row["input_tokens"] == 40160 and len(row["block_hashes"]) == 40160 // 512


def test_mooncake_coarser_blocks_merge_and_finer_must_divide_512():
    w2 = load_workload(block_size=1024)
    assert w2.block_size == 1024
    lens = [len(x) for x in w2.table.column("block_hashes").to_pylist()]
    assert lens == (w2.table.column("input_tokens").to_numpy() // 1024).tolist()
    fine = load_workload().table.column("block_hashes").to_pylist()
    assert w2.table.column("block_hashes").to_pylist()[0] == fine[0][1::2][: lens[0]]
    with pytest.raises(KvplanError, match="must divide 512"):
        load_workload(block_size=384)


def test_tiny_conversation_reads_the_same_in_three_forms():
    opts = ReadOptions(block_size=512)
    forms = [read_trace(T("tiny_chat.sharegpt.json"), "auto", opts),
             read_trace(T("tiny_chat.openai.jsonl"), "agent", opts),
             read_trace(T("tiny_chat.mooncake.jsonl"), "auto", opts)]
    for w in forms[1:]:
        for col in ("session_id", "turn", "input_tokens", "output_tokens"):
            assert w.table.column(col).to_pylist() == forms[0].table.column(col).to_pylist()
        assert _pattern(w) == _pattern(forms[0])
        np.testing.assert_allclose(w.table.column("arrival_s").to_numpy(),
                                   forms[0].table.column("arrival_s").to_numpy(), atol=1e-3)


def test_sharegpt_turns_grow_and_extend_the_previous_prompt():
    w = load_workload(T("fastchat_dummy_conversation.json"))
    rows = [r for r in w.table.to_pylist() if r["session_id"] == 0]
    assert [r["turn"] for r in rows] == [0, 1]
    first, second = rows
    assert second["input_tokens"] >= first["input_tokens"] + first["output_tokens"]
    assert second["block_hashes"][: len(first["block_hashes"])] == first["block_hashes"]
    assert w.num_requests == 1000  # 500 conversations, 2 answers each on average


def test_mtbench_answers_count_256_tokens_and_are_not_shared():
    w = load_workload(T("fastchat_mt_bench_question.jsonl"))
    assert w.num_requests == 160 and set(w.table.column("output_tokens").to_pylist()) == {256}


def test_openai_messages_shape_matches_sharegpt_shape(tmp_path):
    conv = [("system", "Be brief."), ("user", "hi there"), ("assistant", "hello!")]
    a = tmp_path / "a.json"
    a.write_text(json.dumps([{"conversations": [{"from": {"user": "human", "assistant": "gpt"}
                                                 .get(r, r), "value": v} for r, v in conv]}]))
    b = tmp_path / "b.jsonl"
    b.write_text(json.dumps({"messages": [{"role": r, "content": [{"type": "text", "text": v}]}
                                          for r, v in conv]}) + "\n")
    wa, wb = load_workload(a), load_workload(b)
    assert wa.table.to_pylist() == wb.table.to_pylist()


def test_agent_runs_share_the_system_prompt_and_tool_schema_across_sessions():
    w = load_workload(T("openai_tool_calls_sample.jsonl"))
    rows = w.table.to_pylist()
    first_of = {}
    for r in rows:
        first_of.setdefault(r["session_id"], r["block_hashes"])
    a, b, c = first_of.values()
    common = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert common > 50 and a[:common] == c[:common]  # ~900-token shared system + tools prefix
    waits = [r["tool_wait_s"] for r in rows if r["turn"] > 0]
    assert all(x is not None and x > 0 for x in waits)
    assert all(r["tool_wait_s"] is None for r in rows if r["turn"] == 0)


def test_sweagent_traj_one_request_per_llm_call():
    w = load_workload(T("sweagent_demo_marshmallow-code__marshmallow-1867.traj.json"))
    assert w.num_requests == 11 and w.meta.source_format == "agent"
    assert w.table.column("session_id").to_pylist() == [0] * 11
    inp = w.table.column("input_tokens").to_numpy()
    assert np.all(np.diff(inp) > 0)


def test_dynamo_agentic_keeps_timestamps_and_tool_waits():
    w = load_workload(T("dynamo_agentic_mooncake_sample.jsonl"))
    rows = w.table.to_pylist()
    assert len(rows) == 20 and len({r["session_id"] for r in rows}) == 4
    lines = [json.loads(x) for x in T("dynamo_agentic_mooncake_sample.jsonl").read_text()
             .splitlines()]
    assert sorted(r["tool_wait_s"] for r in rows if r["tool_wait_s"] is not None) == sorted(
        x["tool_wait_ms"] / 1000 for x in lines if x["tool_wait_ms"] is not None)
    assert trace_info(w).prefix_reuse > 0.5


def test_azure_and_burstgpt_have_no_shared_blocks():
    az = load_workload(T("AzureLLMInferenceTrace_code_2023.csv"))
    info = trace_info(az)
    assert info.requests == 8819 and not info.has_content
    assert info.unique_blocks == info.total_blocks and info.prefix_reuse == 0
    assert az.table.column("input_tokens").to_pylist()[0] == 4808
    assert az.table.column("arrival_s").to_numpy()[1] == pytest.approx(0.052)
    bg = load_workload(T("burstgpt_sample.csv"))
    assert bg.num_requests == 387 and "13 failed" in bg.meta.notes


def test_parquet_round_trip_and_reblock(tmp_path):
    w = load_workload(T("tiny_chat.sharegpt.json"))
    write_workload(w, tmp_path / "w.parquet")
    back = load_workload(tmp_path / "w.parquet")
    assert back.table.equals(w.table) and back.meta == w.meta
    coarse = load_workload(tmp_path / "w.parquet", block_size=64)
    direct = read_trace(T("tiny_chat.sharegpt.json"), opts=ReadOptions(block_size=64))
    assert coarse.table.column("block_hashes").equals(direct.table.column("block_hashes"))
    assert read_workload(tmp_path / "w.parquet").meta.block_size == 16


def test_a_long_workload_is_written_in_row_groups_and_read_back_whole(tmp_path, monkeypatch):
    """About HASHES_PER_CHUNK hashes per row group (equal rows); read back group by group into
    one chunk per column, equal to what was written."""
    monkeypatch.setattr(schema, "HASHES_PER_CHUNK", 4_000)
    w = load_workload()
    blocks = sum(len(h) for h in w.table.column("block_hashes").to_pylist())
    rows = 4_000 * w.num_requests // blocks  # 3,993 requests, 117,888 blocks: 135 rows
    write_workload(w, tmp_path / "w.parquet")
    meta = pq.ParquetFile(tmp_path / "w.parquet").metadata
    assert meta.num_row_groups == -(-w.num_requests // rows) > 1
    assert meta.row_group(0).num_rows == rows
    back = read_workload(tmp_path / "w.parquet")
    assert back.table.equals(w.table) and back.meta == w.meta
    assert {c.num_chunks for c in back.table.columns} == {1}


def test_conversion_is_deterministic(tmp_path):
    for i in (1, 2):
        write_workload(load_workload(T("fastchat_dummy_conversation.json")), tmp_path / f"{i}.pq")
    assert (tmp_path / "1.pq").read_bytes() == (tmp_path / "2.pq").read_bytes()


def test_out_of_order_timestamps_are_sorted_and_noted(tmp_path):
    p = tmp_path / "m.jsonl"
    recs = [{"timestamp": t, "input_length": 10, "output_length": 1, "hash_ids": [i]}
            for i, t in enumerate([0, 2000, 1000])]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    w = load_workload(p)
    assert w.table.column("arrival_s").to_pylist() == [0.0, 1.0, 2.0]
    assert "1 out-of-order" in w.meta.notes
