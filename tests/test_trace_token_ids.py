"""Token-id JSONL reader and Mooncake sub-blocks: hand-computed hashes, properties, fuzz."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvplan.bundled import bundled_file
from kvplan.errors import InputError, KvplanError
from kvplan.trace.detect import detect_format
from kvplan.trace.hashing import chain_units, coarsen, refine
from kvplan.trace.options import ReadOptions
from kvplan.trace.read import load_workload, read_trace
from kvplan.trace.token_ids import read_token_ids


def _write(path: Path, *records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))
    return path


def _chain(ids):
    return chain_units(np.array(ids, dtype=np.uint64), np.array([0, len(ids)])).tolist()


def test_hand_written_file_gives_the_expected_block_hashes(tmp_path):
    src = _write(tmp_path / "t.jsonl",
                 {"prompt_token_ids": [1, 2, 3, 4, 5, 6, 7, 8, 9], "expected_output_len": 5,
                  "arrival_time_ns": 2_000_000_000},
                 {"input_toks": 8, "output_toks": 3, "arrival_time_ns": 500_000_000,
                  "input_tok_ids": [1, 2, 3, 4, 5, 6, 7, 0], "output_tok_ids": [1, 2, 3]},
                 {"prompt": {"prompt_token_ids": [1, 2, 3]}, "output_tokens": 1,
                  "arrival_time_ns": 500_000_000})
    assert detect_format(src) == "token-ids"
    w = read_trace(src, "auto", ReadOptions(block_size=4))
    rows = w.table.to_pylist()
    a, b = _chain([1, 2, 3, 4, 5, 6, 7, 8, 9]), _chain([1, 2, 3, 4, 5, 6, 7, 0])
    # arrival order: the two at 0.5 s (file order kept), then the one at 2 s
    assert [r["arrival_s"] for r in rows] == [0.0, 0.0, 1.5]
    assert [r["input_tokens"] for r in rows] == [8, 3, 9]
    assert [r["output_tokens"] for r in rows] == [3, 1, 5]
    assert rows[0]["block_hashes"] == [b[3], b[7]]
    assert rows[1]["block_hashes"] == []
    assert rows[2]["block_hashes"] == [a[3], a[7]]  # id 9, the partial tail, not hashed
    assert a[3] == b[3] and a[7] != b[7]
    assert w.meta.source_format == "token-ids" and w.block_size == 4


def test_token_ids_hash_like_the_same_tokens_of_a_text_stream(tmp_path):
    """The chain starts from the same seed for every reader: equal ids, equal hashes."""
    ids = list(range(100, 140))
    w = read_token_ids(_write(tmp_path / "t.jsonl", {"prompt_token_ids": ids, "output_len": 1}),
                       ReadOptions(block_size=16))
    assert w.table.column("block_hashes")[0].as_py() == [_chain(ids)[15], _chain(ids)[31]]


def test_without_arrivals_they_are_synthesized_per_session(tmp_path):
    src = _write(tmp_path / "t.jsonl",
                 *({"prompt_token_ids": [i] * 20, "output_len": 10, "session_id": f"s{i % 2}"}
                   for i in range(4)))
    w = read_token_ids(src)
    assert w.meta.arrival_process is not None
    assert sorted(w.table.column("turn").to_pylist()) == [0, 0, 1, 1]
    assert w.table.column("session_id").to_pylist().count(0) == 2


@pytest.mark.parametrize("record,expected", [
    ({"prompt_token_ids": [1, -2], "output_len": 1}, "2: field 'prompt_token_ids': expected "
                                                     "token ids"),
    ({"prompt_token_ids": [1, 2.5], "output_len": 1}, "got 2.5"),
    ({"prompt_token_ids": "1 2", "output_len": 1}, "expected a list of token ids"),
    ({"prompt_token_ids": [1], "output_len": -1}, "field 'output_len'"),
    ({"prompt_token_ids": [1]}, "expected an output length"),
    ({"prompt_token_ids": [1, 2], "prompt_len": 3, "output_len": 1}, "field 'prompt_len': "
                                                                      "prompt_len is 3"),
    ({"prompt_token_ids": [1], "output_len": 1, "arrival_s": "soon"}, "field 'arrival_s'"),
    ({"prompt_token_ids": [1], "output_len": 1, "session_id": [1]}, "field 'session_id'"),
])
def test_bad_records_name_file_line_and_field(tmp_path, record, expected):
    src = _write(tmp_path / "t.jsonl", {"prompt_token_ids": [7], "output_len": 1}, record)
    with pytest.raises(InputError, match="t.jsonl:2") as e:
        read_token_ids(src)
    assert expected in str(e.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4), max_leaves=12)
keys = st.sampled_from(["prompt_token_ids", "input_tok_ids", "expected_output_len",
                        "output_toks", "output_tok_ids", "prompt_len", "arrival_time_ns",
                        "timestamp", "arrival_s", "session_id", "prompt", "x"])
records = st.dictionaries(keys, json_values | st.lists(st.integers(-3, 2**64 + 1), max_size=6),
                          max_size=6)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(records | st.text(max_size=20), min_size=1, max_size=4))
def test_fuzz_any_input_reads_or_fails_with_a_located_input_error(tmp_path, lines):
    src = tmp_path / "fuzz.jsonl"
    src.write_text("".join((x if isinstance(x, str) else json.dumps(x)).replace("\n", " ")
                           + "\n" for x in lines))
    try:
        w = read_token_ids(src, ReadOptions(block_size=2))
    except InputError as exc:
        assert str(exc).startswith(str(src)) and ("fuzz.jsonl:" in str(exc) or
                                                  "no records" in str(exc)
                                                  or "empty" in str(exc)), exc
        return
    n = w.table.column("input_tokens").to_numpy()
    assert [len(h) for h in w.table.column("block_hashes").to_pylist()] == (n // 2).tolist()


# --- Mooncake finer blocks -------------------------------------------------------------------

parents = st.lists(st.lists(st.integers(0, 3), max_size=5), min_size=2, max_size=6)


@settings(max_examples=200, deadline=None)
@given(ids=parents, k_exp=st.integers(1, 5), tails=st.lists(st.integers(0, 511), min_size=6,
                                                            max_size=6))
def test_sub_block_shared_iff_parent_shared(ids, k_exp, tails):
    """Requests share sub-block i iff they share parent 512-block i // k (chained)."""
    new = 512 >> k_exp
    k = 512 // new
    offsets = np.r_[0, np.cumsum([len(x) for x in ids])].astype(np.int64)
    flat = np.array([v for x in ids for v in x], dtype=np.uint64)
    chained = chain_units(flat, offsets)
    tokens = np.array([len(x) * 512 + t for x, t in zip(ids, tails, strict=False)])
    sub, sub_off = refine(chained, offsets, tokens, 512, new)
    for a in range(len(ids)):
        for b in range(len(ids)):
            sa, sb = sub[sub_off[a]:sub_off[a + 1]], sub[sub_off[b]:sub_off[b + 1]]
            for i in range(min(len(sa), len(sb))):
                j = i // k
                parent_shared = (j < len(ids[a]) and j < len(ids[b])
                                 and ids[a][:j + 1] == ids[b][:j + 1])
                assert (sa[i] == sb[i]) == (parent_shared or a == b), (a, b, i)
    assert np.array_equal(sub_off[1:] - sub_off[:-1], tokens // new)
    back, _ = coarsen(sub, sub_off, tokens, new, 512)
    assert np.array_equal(back, chained)  # merging the sub-blocks back gives the parents


def test_refine_worked_example():
    parents = np.array([11, 22], dtype=np.uint64)
    sub, off = refine(parents, np.array([0, 2]), np.array([1300]), 512, 256)
    assert off.tolist() == [0, 5]
    assert sub[1] == 11 and sub[3] == 22 and len(set(sub.tolist())) == 5


def test_mooncake_at_block_size_16_keeps_the_sharing_of_512():
    fine, coarse = load_workload(block_size=16), load_workload()
    assert fine.block_size == 16
    hashes = fine.table.column("block_hashes").to_pylist()
    assert [len(h) for h in hashes] == (fine.table.column("input_tokens").to_numpy()
                                        // 16).tolist()
    every_32nd = [h[31::32] for h in hashes]
    n512 = [len(h) for h in coarse.table.column("block_hashes").to_pylist()]
    assert [h[:n] for h, n in zip(every_32nd, n512, strict=True)] == \
        coarse.table.column("block_hashes").to_pylist()
    agent = load_workload(bundled_file("traces", "dynamo_agentic_mooncake_sample.jsonl"),
                          block_size=128)
    assert agent.block_size == 128
    with pytest.raises(KvplanError, match="must divide 512"):
        load_workload(block_size=100)
