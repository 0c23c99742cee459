"""Summary statistics of a workload: size, timing, token percentiles and prefix reuse.

Prefix reuse is the infinite-cache hit ratio: the share of prompt tokens that sit in a full
block already seen earlier in arrival order::

    prefix_reuse = (total_blocks - unique_blocks) * block_size / total_input_tokens

e.g. two requests of 40 tokens with block_size 16 that share their first block: 4 blocks, 3
unique -> (4 - 3) * 16 / 80 = 0.2. Partial tail blocks count as misses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from kvplan.workload import Workload
from kvplan.workload.validate import block_hash_lists


@dataclass(frozen=True)
class TraceInfo:
    """Statistics of one workload (columns of ``trace_info.parquet``)."""

    source_format: str
    source_file: str
    tokenizer: str
    has_content: bool
    arrival_process: str | None
    notes: str
    requests: int
    sessions: int
    duration_s: float
    arrival_rate_per_s: float
    input_tokens_total: int
    input_tokens_mean: float
    input_tokens_p50: float
    input_tokens_p90: float
    input_tokens_p99: float
    input_tokens_max: int
    output_tokens_mean: float
    output_tokens_p50: float
    output_tokens_p90: float
    output_tokens_p99: float
    output_tokens_max: int
    block_size: int
    total_blocks: int
    unique_blocks: int
    prefix_reuse: float
    """Share of prompt tokens in a full block seen before (infinite-cache token hit ratio)."""
    model: str | None = None
    kv_bytes_per_token: int | None = None
    unique_kv_bytes: int | None = None
    """KV bytes of all distinct full blocks: unique_blocks * block_size * kv_bytes_per_token."""

    def as_dict(self) -> dict:
        return asdict(self)


def trace_info(workload: Workload, *, model: str | None = None,
               kv_bytes_per_token: int | None = None) -> TraceInfo:
    """Compute :class:`TraceInfo`; give ``kv_bytes_per_token`` for the unique KV footprint."""
    t = workload.table
    arrival = t.column("arrival_s").to_numpy()
    inp = t.column("input_tokens").to_numpy().astype(np.int64)
    out = t.column("output_tokens").to_numpy().astype(np.int64)
    hashes = block_hash_lists(t).flatten().to_numpy(zero_copy_only=False)
    unique = int(len(np.unique(hashes)))
    duration = float(arrival.max() - arrival.min()) if len(arrival) else 0.0
    bs = workload.block_size
    meta = workload.meta
    return TraceInfo(
        source_format=meta.source_format, source_file=meta.source_file,
        tokenizer=meta.tokenizer, has_content=meta.has_content,
        arrival_process=meta.arrival_process, notes=meta.notes,
        requests=len(inp), sessions=int(len(np.unique(t.column("session_id").to_numpy()))),
        duration_s=duration, arrival_rate_per_s=len(inp) / duration if duration > 0 else 0.0,
        input_tokens_total=int(inp.sum()), **_stats("input_tokens", inp),
        **_stats("output_tokens", out),
        block_size=bs, total_blocks=len(hashes), unique_blocks=unique,
        prefix_reuse=(len(hashes) - unique) * bs / max(int(inp.sum()), 1),
        model=model, kv_bytes_per_token=kv_bytes_per_token,
        unique_kv_bytes=(unique * bs * kv_bytes_per_token
                         if kv_bytes_per_token is not None else None),
    )


def _stats(name: str, x: np.ndarray) -> dict:
    p50, p90, p99 = (np.percentile(x, [50, 90, 99]) if len(x) else (0.0, 0.0, 0.0))
    return {f"{name}_mean": float(x.mean()) if len(x) else 0.0, f"{name}_p50": float(p50),
            f"{name}_p90": float(p90), f"{name}_p99": float(p99),
            f"{name}_max": int(x.max()) if len(x) else 0}
