"""EngineRun: what a real engine run log says, whatever its format (docs/validate.md).

Every reader returns one :class:`EngineRun`: the workload it replays (arrival, prompt and
output length of each *successful* request, prompt token ids where the log has them), the
latencies the engine measured for those requests, the engine settings the log records, and its
gauges over time when it has them. Failed requests are left out and counted.

The measured table uses kvplan's own metric definitions (docs/metrics.md), so the real and the
simulated side are summarised by one function::

    arrival ──queue──► first token ──── decode ────► last token
    |<------- ttft_s ------->|                          |
    |<------------------------ e2e_s ------------------>|
                             tpot_s = (e2e_s - ttft_s) / (output_tokens - 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from kvplan.errors import InputError

MEASURED_SCHEMA = {
    "request_id": pl.Int64, "source_id": pl.String, "arrival_s": pl.Float64,
    "input_tokens": pl.Int32, "output_tokens": pl.Int32, "ttft_s": pl.Float64,
    "tpot_s": pl.Float64, "e2e_s": pl.Float64,
}
"""Columns of :attr:`EngineRun.requests` (one row per successful request, arrival order)."""

GAUGE_SCHEMA = {"t_s": pl.Float64, "running": pl.Float64, "waiting": pl.Float64,
                "kv_usage_frac": pl.Float64}
"""Columns of :attr:`EngineRun.gauges` (engine gauges sampled over time; nulls allowed)."""


@dataclass(frozen=True)
class RunSettings:
    """Engine settings a run records; None = not recorded (a flag or a derived value fills it).

    Names follow vLLM's engine arguments; other engines' settings are mapped onto them by
    their reader (docs/validate.md).
    """

    model: str | None = None
    """The served model as the engine names it (a Hugging Face id or path)."""
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    """Tokens per KV block (SGLang: page_size)."""
    kv_pool_tokens: int | None = None
    """Tokens the engine's KV pool holds per replica (vLLM: num_gpu_blocks x block_size;
    SGLang: max_total_num_tokens), if the log records it."""
    gpu_memory_utilization: float | None = None
    kv_cache_memory_bytes: int | None = None
    """KV pool bytes per GPU set by the user (vLLM ``--kv-cache-memory-bytes``)."""
    gpu_total_memory_bytes: int | None = None
    device_name: str | None = None
    kv_cache_dtype: str | None = None
    """``auto`` (the model's dtype), ``fp8``, ``fp8_e4m3``, ``fp8_e5m2``..."""
    tensor_parallel_size: int | None = None
    data_parallel_size: int | None = None
    expert_parallel_size: int | None = None
    enable_prefix_caching: bool | None = None
    sources: dict[str, str] = field(default_factory=dict)
    """Setting name -> where in the log it was read (``meta.json: kv_cache.block_size``)."""


@dataclass(frozen=True)
class EngineRun:
    """One measured engine run, read from any supported log format."""

    path: Path
    """The file or folder the user named."""
    source_format: str
    """``vllm-bench``, ``run-folder``, ``sglang-bench`` or ``csv``."""
    engine: str
    """Engine and version as the log names them (``vLLM 0.19.0``), or ``unknown``."""
    requests: pl.DataFrame
    """Successful requests, :data:`MEASURED_SCHEMA`, sorted by arrival."""
    failed: int
    """Requests the log marks as failed (left out of the workload and of every metric)."""
    settings: RunSettings
    clocks: str
    """Which clock each measured time comes from (one sentence, shown in the report)."""
    prompt_token_ids: tuple[np.ndarray, ...] | None = None
    """Each successful request's prompt token ids (same order as ``requests``), if logged."""
    gauges: pl.DataFrame | None = None
    """Engine gauges over time (:data:`GAUGE_SCHEMA`), when the run has them."""
    notes: tuple[str, ...] = ()
    """Choices made while reading (which run of a multi-run file, synthesized arrivals...)."""


def measured_frame(path: Path, source_id: list[str], arrival_s: np.ndarray,
                   input_tokens: np.ndarray, output_tokens: np.ndarray, ttft_s: np.ndarray,
                   e2e_s: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
    """The measured table, sorted by arrival (stable), with ``tpot_s`` derived; also the order.

    Arrivals are shifted so the first is 0. TPOT is (e2e - ttft) / (output_tokens - 1), null
    for one-token outputs: a 3-token request with TTFT 0.2 s and e2e 0.6 s has TPOT 0.2 s.
    Raises InputError when no successful request is left (naming the field that marks
    failures, ``errors`` in a benchmark client's file).
    """
    if len(arrival_s) == 0:
        raise InputError(path, "no successful request: nothing to replay", field="errors")
    order = np.argsort(arrival_s, kind="stable")
    out = np.asarray(output_tokens, dtype=np.int64)[order]
    ttft, e2e = np.asarray(ttft_s, dtype=np.float64)[order], np.asarray(e2e_s)[order]
    tpot = np.where(out > 1, (e2e - ttft) / np.maximum(out - 1, 1), np.nan)
    arrival = np.asarray(arrival_s, dtype=np.float64)[order]
    frame = pl.DataFrame({
        "request_id": np.arange(len(order), dtype=np.int64),
        "source_id": [source_id[i] for i in order],
        "arrival_s": arrival - arrival[0],
        "input_tokens": np.asarray(input_tokens)[order],
        "output_tokens": out,
        "ttft_s": ttft,
        "tpot_s": pl.Series("tpot_s", tpot, nan_to_null=True),
        "e2e_s": e2e,
    }, schema=MEASURED_SCHEMA)
    return frame, order
