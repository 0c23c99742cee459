"""Run folders: ``meta.json`` + ``requests.jsonl`` (+ ``timeseries.csv``), the layout of
LLMServingSim's vLLM benchmark runs (the bundled run, docs/validate.md).

``requests.jsonl``, one successful or failed request a line:

- ``input_toks``, ``output_toks``: prompt and output tokens;
- ``queued_ts``, ``scheduled_ts``, ``first_token_ts``, ``last_token_ts``: the engine's stamps
  (seconds, the engine process's monotonic clock); a request without first/last token stamps
  (null) failed;
- ``arrival_time``: the client's send time (seconds, epoch clock); ``request_id``; optional
  ``prompt_token_ids``.

Latencies use the engine's clock only: arrival = ``queued_ts``, TTFT = ``first_token_ts -
queued_ts``, e2e = ``last_token_ts - queued_ts``. The client's epoch clock cannot be
subtracted from the engine's; its send times are compared with the queue times only to report
the client-to-engine delay.

``meta.json`` gives the engine settings (vLLM engine arguments, the KV pool, the GPU);
``timeseries.csv`` the engine's gauges each second (``t``, ``running``, ``waiting``,
``kv_cache_pct``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from kvplan.errors import InputError
from kvplan.trace.inputs import check_file, json_lines, read_csv_columns
from kvplan.validate.fields import TOKENS_MAX, as_float, as_int, as_list, optional, required
from kvplan.validate.run import GAUGE_SCHEMA, EngineRun, RunSettings, measured_frame

REQUESTS, META, GAUGES = "requests.jsonl", "meta.json", "timeseries.csv"

_META = {
    # RunSettings field: (kind, meta.json paths tried in order)
    "model": ("str", ("model", "engine_kwargs.model")),
    "max_num_seqs": ("int", ("engine_kwargs.max_num_seqs",
                             "resolved_config.scheduler_config.max_num_seqs")),
    "max_num_batched_tokens": ("int", ("engine_kwargs.max_num_batched_tokens",
                                       "resolved_config.scheduler_config.max_num_batched_tokens")),
    "block_size": ("int", ("kv_cache.block_size", "resolved_config.cache_config.block_size")),
    "gpu_memory_utilization": ("frac", ("kv_cache.gpu_memory_utilization",
                                         "resolved_config.cache_config.gpu_memory_utilization")),
    "kv_cache_memory_bytes": ("int", ("kv_cache.kv_cache_memory_bytes",
                                      "resolved_config.cache_config.kv_cache_memory_bytes")),
    "gpu_total_memory_bytes": ("int", ("hardware.device_total_memory_bytes",)),
    "device_name": ("str", ("hardware.device_name",)),
    "kv_cache_dtype": ("str", ("engine_kwargs.kv_cache_dtype",
                               "resolved_config.cache_config.cache_dtype")),
    "tensor_parallel_size": ("int", ("engine_kwargs.tensor_parallel_size",
                                     "resolved_config.parallel_config.tensor_parallel_size")),
    "data_parallel_size": ("int", ("engine_kwargs.data_parallel_size",
                                   "resolved_config.parallel_config.data_parallel_size")),
    "enable_prefix_caching": ("bool", ("kv_cache.enable_prefix_caching",
                                       "resolved_config.cache_config.enable_prefix_caching")),
}


def is_run_folder(path: Path) -> bool:
    """A folder holding ``requests.jsonl``."""
    return path.is_dir() and (path / REQUESTS).is_file()


def read_run_folder(path: Path) -> EngineRun:
    """Read a run folder (or its ``requests.jsonl``, with ``meta.json`` beside it)."""
    folder = path if path.is_dir() else path.parent
    req_path = check_file(folder / REQUESTS if path.is_dir() else path)
    meta_path = check_file(folder / META)
    rows, failed, tokens = _requests(req_path)
    if not rows:
        raise InputError(req_path, "no successful request (every line lacks first/last token "
                         "stamps): nothing to replay", field="first_token_ts")
    ids, arrival, inp, out, ttft, e2e, client = (list(c) for c in zip(*rows, strict=True))
    frame, order = measured_frame(req_path, ids, np.array(arrival), np.array(inp),
                                  np.array(out), np.array(ttft), np.array(e2e))
    meta = _load_json(meta_path)
    settings = _settings(meta_path, meta)
    version = optional(meta_path, meta, "vllm_version", "str")
    gauges_path = folder / GAUGES
    return EngineRun(
        path=path, source_format="run-folder",
        engine=f"vLLM {version}" if version else "vLLM",
        requests=frame, failed=failed, settings=settings,
        clocks="engine monotonic clock: arrival = queued_ts, TTFT = first_token_ts - queued_ts, "
               "e2e = last_token_ts - queued_ts (the client's epoch arrival_time is not mixed in)",
        prompt_token_ids=(tuple(tokens[i] for i in order)
                          if all(t is not None for t in tokens) else None),
        gauges=read_gauges(gauges_path) if gauges_path.is_file() else None,
        notes=tuple(n for n in (_client_delay_note(np.array(arrival), client),) if n))


def _requests(path: Path) -> tuple[list[tuple], int, list[np.ndarray | None]]:
    """(id, arrival, input, output, ttft, e2e, client send time) per successful request."""
    rows: list[tuple] = []
    tokens: list[np.ndarray | None] = []
    failed = 0
    for lineno, obj in json_lines(path):
        kw = {"line": lineno}
        stamps = {k: required(obj, k, path, **kw)
                  for k in ("queued_ts", "first_token_ts", "last_token_ts")}
        inp = as_int(path, required(obj, "input_toks", path, **kw), "input_toks", **kw,
                     minimum=1, maximum=TOKENS_MAX)
        out = as_int(path, required(obj, "output_toks", path, **kw), "output_toks", **kw,
                     maximum=TOKENS_MAX)
        if stamps["first_token_ts"] is None or stamps["last_token_ts"] is None or out == 0:
            failed += 1
            continue
        queued = as_float(path, stamps["queued_ts"], "queued_ts", **kw)
        first = as_float(path, stamps["first_token_ts"], "first_token_ts", **kw, minimum=queued)
        last = as_float(path, stamps["last_token_ts"], "last_token_ts", **kw, minimum=first)
        client = optional(path, obj, "arrival_time", "float", **kw)
        rid = obj.get("request_id", lineno - 1)
        rows.append((str(rid), queued, inp, out, first - queued, last - queued, client))
        tokens.append(_token_ids(path, obj, inp, lineno))
    return rows, failed, tokens


def _token_ids(path: Path, obj: dict, input_tokens: int, line: int) -> np.ndarray | None:
    if obj.get("prompt_token_ids") is None:
        return None
    ids = as_list(path, obj["prompt_token_ids"], "prompt_token_ids", length=input_tokens,
                  line=line)
    return np.array([as_int(path, t, "prompt_token_ids", line=line) for t in ids],
                    dtype=np.uint64)


def _load_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            meta = json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(meta, dict):
        raise InputError(path, f"expected a JSON object, got {type(meta).__name__}")
    return meta


def _settings(path: Path, meta: dict) -> RunSettings:
    values, sources = {}, {}
    for name, (kind, keys) in _META.items():
        for key in keys:
            value = optional(path, meta, key, kind)
            if value is not None:
                values[name], sources[name] = value, f"{path.name}: {key}"
                break
    blocks = optional(path, meta, "kv_cache.num_gpu_blocks", "int")
    if blocks is not None and "block_size" in values:
        values["kv_pool_tokens"] = blocks * values["block_size"]
        sources["kv_pool_tokens"] = f"{path.name}: kv_cache.num_gpu_blocks x block_size"
    ep = optional(path, meta, "engine_kwargs.enable_expert_parallel", "bool")
    if ep is not None:
        # vLLM 0.19.0 fused_moe/config.py:1084-1117: experts split over tp x dp GPUs
        values["expert_parallel_size"] = (values.get("tensor_parallel_size", 1)
                                          * values.get("data_parallel_size", 1)) if ep else 1
        sources["expert_parallel_size"] = f"{path.name}: engine_kwargs.enable_expert_parallel"
    return RunSettings(**values, sources=sources)


def read_gauges(path: Path) -> pl.DataFrame:
    """``timeseries.csv`` -> :data:`GAUGE_SCHEMA` (kv_cache_pct / 100 as kv_usage_frac)."""
    check_file(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        header = {c.strip() for c in f.readline().split(",")}
    cols = {"t": "float", "running": "float", "waiting": "float"}
    if "kv_cache_pct" in header:
        cols["kv_cache_pct"] = "float"
    df = read_csv_columns(path, cols)
    for name in cols:
        bad = ~df[name].is_finite()
        if bad.any():
            raise InputError(path, f"expected a finite number, got {df[name][int(bad.arg_true()[0])]}",
                             line=int(bad.arg_true()[0]) + 2, field=name)
    kv = df["kv_cache_pct"] / 100 if "kv_cache_pct" in df.columns else pl.lit(None)
    return df.select(pl.col("t").alias("t_s"), "running", "waiting",
                     kv.alias("kv_usage_frac")).cast(GAUGE_SCHEMA)


def _client_delay_note(queued: np.ndarray, client: list[float | None]) -> str | None:
    """How much later than the client's send (relative to the first) each request was queued."""
    if any(c is None for c in client):
        return None
    delay = (queued - queued[0]) - (np.array(client, dtype=np.float64) - client[0])
    return (f"client send -> engine queue, relative to the first request: "
            f"{delay.min() * 1e3:+.0f} to {delay.max() * 1e3:+.0f} ms (median "
            f"{np.median(delay) * 1e3:+.0f} ms); the replay uses the engine's queue times")
