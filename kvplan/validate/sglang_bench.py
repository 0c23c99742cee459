"""SGLang ``bench_serving --output-file F --output-details`` JSONL (docs/validate.md).

Field names and units from SGLang 0.5.23 ``sglang/benchmark/serving.py`` (``sglang.bench_serving``
re-exports it): one JSON object per run, appended (``serving.py:1961-1966``); per-request lists
``input_lens``, ``output_lens`` (0 = failed, ``serving.py:1190``), ``ttfts`` and ``itls``
(seconds, ``time.perf_counter`` on the client) and ``errors`` (``serving.py:1945-1952``).

SGLang keeps no per-request start times. It sends requests in file order with exponential gaps
of mean 1 / ``request_rate`` (``serving.py:1117-1129``), so kvplan synthesizes such gaps from
``--seed``: the arrival *process* is the run's, the individual arrival times are not. Runs at
``request_rate`` inf arrive at once; trace-timed or concurrency-capped runs cannot be replayed
from this file. Engine settings come from ``server_info`` (the server's ``/server_info``:
its resolved arguments plus the scheduler's ``max_total_num_tokens``, the KV pool in tokens).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kvplan.errors import InputError
from kvplan.validate.bench_json import client_results, last_document
from kvplan.validate.fields import dig, optional
from kvplan.validate.run import EngineRun, RunSettings, measured_frame

_SERVER_ARGS = {
    # RunSettings field: (server_info key, kind)
    "model": ("model_path", "str"),
    "max_num_seqs": ("max_running_requests", "int"),
    "max_num_batched_tokens": ("chunked_prefill_size", "int"),
    "block_size": ("page_size", "int"),
    "kv_cache_dtype": ("kv_cache_dtype", "str"),
    "tensor_parallel_size": ("tp_size", "int"),
    "data_parallel_size": ("dp_size", "int"),
    "expert_parallel_size": ("ep_size", "int"),
    "gpu_memory_utilization": ("mem_fraction_static", "frac"),
}


def read_sglang_bench(path: Path, seed: int = 0) -> EngineRun:
    """Read a detailed ``bench_serving`` result file (its last run); ``seed`` draws arrivals."""
    doc, note = last_document(path, "ttfts", "run bench_serving with --output-details")
    res = client_results(path, doc)
    arrival, arrival_note = _arrivals(path, doc, len(res.ok), seed)
    idx = np.flatnonzero(res.ok)
    frame, _ = measured_frame(path, [str(i) for i in idx], arrival[idx], res.input_lens[idx],
                              res.output_lens[idx], res.ttfts[idx], res.e2e[idx])
    info = doc.get("server_info")
    if isinstance(info, dict) and isinstance(info.get("decode"), list) and info["decode"]:
        info = info["decode"][0]
    version = info.get("version") if isinstance(info, dict) else None
    return EngineRun(
        path=path, source_format="sglang-bench",
        engine=f"SGLang {version}" if isinstance(version, str) else "SGLang",
        requests=frame, failed=res.failed, settings=_settings(path, info),
        clocks="TTFT and e2e from the benchmark client (time.perf_counter, HTTP included); "
               "arrivals synthesized (the file keeps no start times)",
        notes=tuple(n for n in (note, arrival_note) if n))


def _arrivals(path: Path, doc: dict, n: int, seed: int) -> tuple[np.ndarray, str]:
    if doc.get("max_concurrency") is not None:
        raise InputError(path, "a concurrency-capped (closed-loop) run cannot be replayed: the "
                         "file keeps no start times", field="max_concurrency")
    rate = doc.get("request_rate", "missing")
    if rate == "trace":
        raise InputError(path, "arrivals followed a trace's timestamps, which the file does "
                         "not keep", field="request_rate")
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate >= 1e-6:
        if math.isinf(rate):
            return np.zeros(n), "request_rate inf: every request arrives at 0"
        gaps = np.random.default_rng(seed).exponential(1.0 / rate, max(n - 1, 0))
        return (np.concatenate(([0.0], np.cumsum(gaps))),
                f"arrivals synthesized: Poisson at the run's {rate:g} req/s, seed {seed}")
    raise InputError(path, f"expected a number >= 1e-6 (requests/s) or inf, got {rate!r}",
                     field="request_rate")


def _settings(path: Path, info: object) -> RunSettings:
    if not isinstance(info, dict):
        return RunSettings()
    values = {name: optional(path, info, key, kind) for name, (key, kind) in _SERVER_ARGS.items()}
    values["kv_pool_tokens"] = optional(path, info, "max_total_num_tokens", "int")
    radix_off = dig(info, "disable_radix_cache")
    values["enable_prefix_caching"] = (not radix_off) if isinstance(radix_off, bool) else None
    keys = {**{k: f"server_info.{v[0]}" for k, v in _SERVER_ARGS.items()},
            "kv_pool_tokens": "server_info.max_total_num_tokens",
            "enable_prefix_caching": "server_info.disable_radix_cache"}
    sources = {k: keys[k] for k, v in values.items() if v is not None}
    return RunSettings(**values, sources=sources)
