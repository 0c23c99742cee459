"""Fuzz every engine-run reader: any input reads, or fails with an InputError naming the file
(and, for a structurally valid document with one bad value, the line or field)."""

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from validate_samples import CSV, SGLANG, VLLM

from kvplan.errors import InputError
from kvplan.validate.generic_csv import read_generic_csv
from kvplan.validate.read import read_run
from kvplan.validate.run_folder import read_run_folder
from kvplan.validate.sglang_bench import read_sglang_bench
from kvplan.validate.vllm_bench import read_vllm_bench

FUZZ = settings(max_examples=60, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=10)

RUN_LINE = {"request_id": "bench-0", "input_toks": 2358, "output_toks": 531,
            "arrival_time": 1787267980.08, "queued_ts": 27536.66, "scheduled_ts": 27536.66,
            "first_token_ts": 27537.35, "last_token_ts": 27554.23}
META = {"model": "meta-llama/Llama-3.1-8B", "vllm_version": "0.19.0",
        "engine_kwargs": {"max_num_seqs": 256, "max_num_batched_tokens": 2048,
                          "tensor_parallel_size": 1, "enable_expert_parallel": False},
        "kv_cache": {"num_gpu_blocks": 2588, "block_size": 16,
                     "gpu_memory_utilization": 0.9, "enable_prefix_caching": True},
        "hardware": {"device_name": "NVIDIA GeForce RTX 4090"}}


def _reads_or_names(read, path: Path, structured: bool) -> None:
    folder = path if path.is_dir() else path.parent
    try:
        read(path)
    except InputError as exc:
        assert str(exc).startswith(str(folder)), exc
        if structured:
            assert exc.line is not None or exc.field is not None, exc
    finally:
        shutil.rmtree(folder)


def _mutate(doc: dict, data) -> dict:
    """``doc`` with one key (possibly nested one level) set to an arbitrary JSON value."""
    key = data.draw(st.sampled_from(sorted(doc)))
    value = data.draw(json_values)
    if isinstance(doc[key], list) and doc[key] and data.draw(st.booleans()):
        items = list(doc[key])
        items[data.draw(st.integers(0, len(items) - 1))] = value
        value = items
    return {**doc, key: value}


def _write(content: bytes | str, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="kvplan-fuzz-"))
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes(blob):
    for name, read in (("r.json", read_vllm_bench), ("s.jsonl", read_sglang_bench),
                       ("m.csv", read_generic_csv), ("x.run", read_run),
                       ("requests.jsonl", read_run_folder)):
        _reads_or_names(read, _write(blob, name), structured=False)


@FUZZ
@given(st.data())
def test_vllm_bench_mutated(data):
    _reads_or_names(read_vllm_bench, _write(json.dumps(_mutate(VLLM, data)), "r.json"), True)


@FUZZ
@given(st.data())
def test_sglang_bench_mutated(data):
    doc = _mutate(SGLANG, data)
    if data.draw(st.booleans()):
        doc = {**doc, "server_info": _mutate(SGLANG["server_info"], data)}
    _reads_or_names(read_sglang_bench, _write(json.dumps(doc), "s.jsonl"), True)


@FUZZ
@given(st.data())
def test_run_folder_mutated(data):
    lines = [RUN_LINE, _mutate(RUN_LINE, data)]
    section = data.draw(st.sampled_from(["engine_kwargs", "kv_cache", "hardware"]))
    meta = {**META, section: _mutate(META[section], data)}
    cells = data.draw(st.lists(st.sampled_from(["1", "-3", "nan", "x", "", "1e400"]),
                               min_size=3, max_size=3)) if data.draw(st.booleans()) else None
    path = _write("\n".join(json.dumps(x) for x in lines), "requests.jsonl")
    (path.parent / "meta.json").write_text(json.dumps(meta))
    if cells is not None:
        (path.parent / "timeseries.csv").write_text("t,running,waiting\n1,2,3\n"
                                                    + ",".join(cells) + "\n")
    _reads_or_names(read_run_folder, path.parent, True)


@FUZZ
@given(st.data())
def test_generic_csv_mutated(data):
    rows = [line.split(",") for line in CSV.strip().split("\n")]
    r = data.draw(st.integers(1, len(rows) - 1))
    c = data.draw(st.integers(0, len(rows[0]) - 1))
    rows[r][c] = data.draw(st.text(alphabet="0123456789.-einfa ", max_size=8))
    text = "\n".join(",".join(row) for row in rows) + "\n"
    _reads_or_names(read_generic_csv, _write(text, "m.csv"), True)
