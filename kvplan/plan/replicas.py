"""Replay over ``dp`` replicas: route the requests, replay each replica, pool the figures.

``kvplan replay --dp N`` serves the workload with N replicas of the configuration (each of
``tp`` GPUs and its own KV tiers). Requests are routed by the planner's rule (prefix affinity,
kvplan.plan.routing), each replica's requests are replayed on their own, and the summary pools
them: latency percentiles over every finished request, counts / bytes / rates summed, hit
ratios over all prompt blocks, peaks and the simulated duration the largest replica's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.plan.routing import route
from kvplan.sim.config import ReplayConfig
from kvplan.sim.replay import run_replay
from kvplan.sim.results import ReplayResult
from kvplan.workload import Workload

SUMMED = ("requests", "finished", "throughput_req_s", "throughput_tok_s", "prefill_tok_s",
          "goodput_req_s", "load_stall_total_s", "preemptions", "recomputed_tokens",
          "prompt_blocks", "prompt_tokens", "hit_hbm_blocks", "hit_dram_blocks",
          "hit_ssd_blocks", "h2d_bytes", "d2h_bytes", "ssd_read_bytes", "ssd_write_bytes",
          "ssd_bytes_written", "extrapolated_steps", "extrapolated_transfers")
"""Run figures that add up over replicas."""
LARGEST = ("sim_duration_s", "hbm_peak_gib", "dram_peak_gib", "ssd_peak_gib")
"""Run figures reported as the largest replica's."""
PERCENTILES = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s"}


@dataclass(frozen=True)
class ReplicaRuns:
    """Every replica's replay, in replica order, and the pooled summary."""

    results: list[ReplayResult]
    run: dict[str, float | int | str]
    """Pooled run summary (the keys of a single run that pool; docs/metrics.md)."""
    requests: pl.DataFrame
    """Every replica's request rows with a ``replica`` column (0-based)."""
    timeseries: pl.DataFrame
    """Every replica's time series with a ``replica`` column."""


def replay_replicas(workload: Workload, config: ReplayConfig, progress: bool = False
                    ) -> ReplicaRuns:
    """Route ``workload`` over ``config.layout.dp`` replicas and replay each one."""
    parts = route(workload, config.layout.dp)
    results = [run_replay(part, config, progress=progress) for part in parts]
    tag = [pl.lit(i).alias("replica") for i in range(len(results))]
    requests = pl.concat([r.requests.with_columns(t) for r, t in zip(results, tag, strict=True)],
                         how="diagonal_relaxed")
    series = [r.timeseries.with_columns(t) for r, t in zip(results, tag, strict=True)
              if r.timeseries.height]
    timeseries = pl.concat(series, how="diagonal_relaxed") if series else pl.DataFrame()
    return ReplicaRuns(results, pooled_run(results, requests), requests, timeseries)


def pooled_run(results: list[ReplayResult], requests: pl.DataFrame) -> dict:
    """One run summary over all replicas (rules in the module docstring)."""
    runs = [r.run for r in results]
    out: dict = {"mode": runs[0].get("mode", ""), "bound": runs[0].get("bound", ""),
                 "replicas": len(runs),
                 "stop_reason": ", ".join(sorted({str(r.get("stop_reason", "")) for r in runs}))}
    out |= {k: sum(r[k] for r in runs) for k in SUMMED if all(k in r for r in runs)}
    out |= {k: max(r[k] for r in runs) for k in LARGEST if all(k in r for r in runs)}
    blocks = max(out.get("prompt_blocks", 0), 1)
    for tier in ("hbm", "dram", "ssd"):
        if f"hit_{tier}_blocks" in out:
            out[f"hit_ratio_{tier}_blocks"] = out[f"hit_{tier}_blocks"] / blocks
    if out.get("finished"):
        out["slo_attained_frac"] = sum(r.get("slo_attained_frac", 0.0) * r["finished"]
                                       for r in runs) / out["finished"]
    fin = requests.filter(pl.col("finished")) if "finished" in requests.columns else requests
    for name, col in PERCENTILES.items():
        if col in fin.columns:
            values = fin[col].drop_nulls().to_numpy()
            for q in (50, 99):
                out[f"{name}_p{q}_ms"] = float(np.percentile(values, q)) * 1e3 \
                    if values.size else None
    out["extrapolated"] = "; ".join(f"replica {i + 1}: {r['extrapolated']}"
                                    for i, r in enumerate(runs) if r.get("extrapolated"))
    return out
