"""Each engine-run reader on a small real-shaped file: hand-written expected rows and metrics."""

import dataclasses
import json

import numpy as np
import pytest
from validate_samples import CSV, SGLANG, VLLM

from kvplan.errors import InputError
from kvplan.validate.read import default_run_path, detect_run_format, read_run


def _rows(run):
    return run.requests.select("source_id", "arrival_s", "input_tokens", "output_tokens",
                               "ttft_s", "tpot_s", "e2e_s").rows()


def _approx_rows(run, expected):
    got = _rows(run)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g[:1] == e[:1] and g[2:4] == e[2:4]
        for a, b in zip(g[1:2] + g[4:], e[1:2] + e[4:], strict=True):
            assert (a is None and b is None) or a == pytest.approx(b, abs=1e-9)


def test_vllm_bench(tmp_path):
    p = tmp_path / "vllm-result.json"
    p.write_text(json.dumps(VLLM))
    run = read_run(p)
    assert (run.source_format, run.failed, run.settings.model) == (
        "vllm-bench", 1, "meta-llama/Llama-3.1-8B")
    # sorted by start time; index 2 failed; e2e = ttft + sum(itls); tpot = (e2e-ttft)/(out-1)
    _approx_rows(run, [("1", 0.0, 200, 1, 0.2, None, 0.2),
                       ("0", 0.5, 100, 3, 0.1, 0.05, 0.2),
                       ("3", 1.0, 150, 3, 0.15, 0.15, 0.45)])


def test_vllm_bench_latencies_field_and_appended_runs(tmp_path):
    first = {**VLLM, "ttfts": [0.9] * 4}
    second = {**VLLM, "latencies": [0.3, 0.25, 0.0, 0.5]}  # vLLM 0.34.0 writes latencies
    p = tmp_path / "appended.json"
    p.write_text(json.dumps(first) + "\n" + json.dumps(second))
    run = read_run(p)
    assert run.requests["e2e_s"].to_list() == pytest.approx([0.25, 0.3, 0.5])
    assert any("holds 2 runs" in n for n in run.notes)


def test_run_folder_first_requests_of_the_bundled_run():
    run = read_run(default_run_path())
    assert (run.source_format, run.engine, run.failed, run.requests.height) == (
        "run-folder", "vLLM 0.19.0", 0, 300)
    s = run.settings
    assert (s.max_num_seqs, s.max_num_batched_tokens, s.block_size, s.kv_pool_tokens) == (
        256, 2048, 16, 2588 * 16)
    assert (s.tensor_parallel_size, s.data_parallel_size, s.expert_parallel_size) == (1, 1, 1)
    assert s.gpu_total_memory_bytes == 25_250_627_584 and s.enable_prefix_caching
    # bench-0: queued 27536.660701067, first 27537.350135653, last 27554.231018618, 531 out
    # bench-1: queued 27537.047603549, first 27537.350135653, last 27562.279894586, 769 out
    _approx_rows(dataclasses.replace(run, requests=run.requests.head(2)), [
        ("bench-0", 0.0, 2358, 531, 0.689434586, 16.880882965 / 530, 17.570317551),
        ("bench-1", 0.386902482, 1034, 769, 0.302532104, 24.929758933 / 768, 25.232291037)])
    assert run.gauges is not None and run.gauges.row(0) == (1.0, 5.0, 2.0, pytest.approx(0.1322))


def test_run_folder_failed_lines_and_token_ids(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"model": "m", "kv_cache": {
        "block_size": 4, "num_gpu_blocks": 10}}))
    lines = [
        {"request_id": "a", "input_toks": 5, "output_toks": 2, "queued_ts": 10.0,
         "first_token_ts": 10.5, "last_token_ts": 11.0, "prompt_token_ids": [1, 2, 3, 4, 5]},
        {"request_id": "b", "input_toks": 3, "output_toks": 2, "queued_ts": 10.2,
         "first_token_ts": None, "last_token_ts": None},
    ]
    (tmp_path / "requests.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    run = read_run(tmp_path / "requests.jsonl")
    assert run.failed == 1 and run.requests["source_id"].to_list() == ["a"]
    assert run.settings.kv_pool_tokens == 40
    assert run.prompt_token_ids[0].tolist() == [1, 2, 3, 4, 5]
    assert run.gauges is None


def test_sglang_bench(tmp_path):
    p = tmp_path / "sglang.jsonl"
    p.write_text(json.dumps({**SGLANG, "ttfts": [1.0, 1.0, 0.0]}) + "\n" + json.dumps(SGLANG))
    run = read_run(p, seed=3)
    assert (run.source_format, run.engine, run.failed) == ("sglang-bench", "SGLang 0.5.23", 1)
    gaps = np.random.default_rng(3).exponential(0.5, 2)  # Poisson at 2 req/s from --seed
    _approx_rows(run, [("0", 0.0, 64, 2, 0.1, 0.3, 0.4),
                       ("1", gaps[0], 32, 4, 0.2, 0.1, 0.5)])
    s = run.settings
    assert (s.model, s.max_num_seqs, s.max_num_batched_tokens, s.block_size) == (
        "meta-llama/Llama-3.1-8B", 128, 4096, 1)
    assert (s.kv_pool_tokens, s.enable_prefix_caching, s.gpu_memory_utilization) == (
        50000, True, 0.85)
    assert any("Poisson at the run's 2 req/s, seed 3" in n for n in run.notes)


def test_generic_csv(tmp_path):
    p = tmp_path / "measured.csv"
    p.write_text(CSV)
    run = read_run(p)
    assert (run.source_format, run.failed) == ("csv", 0)
    _approx_rows(run, [("r1", 0.0, 40, 1, 0.02, None, 0.02),
                       ("r0", 0.5, 100, 5, 0.05, 0.1, 0.45),
                       ("r2", 1.5, 60, 3, 0.1, 0.1, 0.3)])


@pytest.mark.parametrize("name,content,fmt", [
    ("a.txt", json.dumps(VLLM), "vllm-bench"),
    ("b.json", json.dumps(SGLANG), "sglang-bench"),
    ("c.json", CSV, "csv"),
    ("requests.jsonl", '{"queued_ts": 1.0}', "run-folder"),
])
def test_detect_by_content(tmp_path, name, content, fmt):
    p = tmp_path / name
    p.write_text(content)
    assert detect_run_format(p) == fmt


@pytest.mark.parametrize("content,field", [
    (json.dumps({k: v for k, v in VLLM.items() if k != "start_times"}), "start_times"),
    (json.dumps({**VLLM, "output_lens": [3, 1]}), "output_lens"),
    (json.dumps({**VLLM, "ttfts": [0.1, "x", 0.0, 0.2]}), "ttfts[1]"),
    (json.dumps({k: v for k, v in VLLM.items() if k not in ("ttfts", "itls")}), "ttfts"),
])
def test_vllm_bench_bad_fields(tmp_path, content, field):
    p = tmp_path / "r.json"
    p.write_text(content)
    with pytest.raises(InputError) as exc:
        read_run(p)
    assert str(p) in str(exc.value) and f"field '{field}'" in str(exc.value)


def test_zero_successful_requests(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({**VLLM, "errors": ["e"] * 4}))
    with pytest.raises(InputError, match="field 'errors': no successful request"):
        read_run(p)


def test_run_folder_missing_field_names_line(tmp_path):
    (tmp_path / "meta.json").write_text("{}")
    (tmp_path / "requests.jsonl").write_text(
        '{"input_toks": 5, "output_toks": 2, "queued_ts": 1, "first_token_ts": 2, '
        '"last_token_ts": 3}\n{"input_toks": 5, "output_toks": 2, "queued_ts": 1, '
        '"first_token_ts": 2}\n')
    with pytest.raises(InputError, match=r"requests.jsonl:2: field 'last_token_ts'"):
        read_run(tmp_path)


def test_sglang_closed_loop_is_refused(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps({**SGLANG, "max_concurrency": 8}))
    with pytest.raises(InputError, match="field 'max_concurrency'"):
        read_run(p)
