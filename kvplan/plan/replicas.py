"""Replay over ``dp`` replicas: route the requests, replay each replica, pool the figures.

``kvplan replay --dp N`` serves the workload with N replicas of the configuration (each of
``tp`` GPUs and its own KV tiers). Requests are routed by the planner's rule (prefix affinity,
kvplan.plan.routing), each replica's requests are replayed on their own, and the summary pools
them: latency percentiles over every finished request, counts / bytes / rates summed, hit
ratios over all prompt blocks, peaks and the simulated duration the largest replica's.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from kvplan.hierarchy import Link, Tier
from kvplan.plan.routing import route
from kvplan.sim.config import ReplayConfig
from kvplan.sim.metrics import mean_or_none, percentiles_ms
from kvplan.sim.replay import run_replay
from kvplan.sim.results import (
    Extrapolation,
    LinkFigures,
    ReplayResult,
    RunSummary,
    TierFigures,
    Timing,
)
from kvplan.workload import Workload


@dataclass(frozen=True)
class ReplicaRuns:
    """Every replica's replay, in replica order, and the pooled summary."""

    results: list[ReplayResult]
    run: RunSummary
    """Pooled run summary (rules in the module docstring)."""
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


def pooled_run(results: list[ReplayResult], requests: pl.DataFrame) -> RunSummary:
    """One run summary over all replicas (rules in the module docstring): counts, bytes and
    rates summed; hit ratios over the pooled prompts; peaks, capacities, link utilization,
    drive writes per day and the duration the largest replica's; latency percentiles over
    every finished request."""
    runs = [r.run for r in results]
    blocks = sum(r.prompt_blocks for r in runs)
    tokens = sum(r.prompt_tokens for r in runs)
    tiers = []
    for t in Tier:
        figs = [r.tier(t) for r in runs]
        hit = sum(f.hit_blocks for f in figs)
        tiers.append(TierFigures(
            capacity_blocks=max(f.capacity_blocks for f in figs),
            peak_blocks=max(f.peak_blocks for f in figs),
            peak_gib=max(f.peak_gib for f in figs), hit_blocks=hit,
            hit_ratio_blocks=hit / blocks if blocks else 0.0,
            hit_ratio_tokens=(sum(f.hit_ratio_tokens * r.prompt_tokens
                                  for f, r in zip(figs, runs, strict=True)) / tokens
                              if tokens else 0.0)))
    links = tuple(LinkFigures(sum(r.link(k).bytes for r in runs),
                              _largest([r.link(k).util for r in runs])) for k in Link)
    return RunSummary(mode=runs[0].mode, bound=runs[0].bound,
                      requests=sum(r.requests for r in runs), prompt_blocks=blocks,
                      prompt_tokens=tokens,
                      recomputed_tokens=sum(r.recomputed_tokens for r in runs),
                      tiers=tuple(tiers), links=links,
                      timing=pooled_timing([r.timing for r in runs], requests)
                      if all(r.timing for r in runs) else None)


def pooled_timing(timings: list[Timing], requests: pl.DataFrame) -> Timing:
    """The event-mode figures of every replica pooled (``requests``: all replicas' rows)."""
    fin = requests.filter(pl.col("finished"))
    finished = sum(t.finished for t in timings)
    stall = sum(t.load_stall_total_s for t in timings)
    return Timing(
        stop_reason=", ".join(sorted({t.stop_reason for t in timings})), finished=finished,
        sim_duration_s=max(t.sim_duration_s for t in timings),
        throughput_req_s=sum(t.throughput_req_s for t in timings),
        throughput_tok_s=sum(t.throughput_tok_s for t in timings),
        prefill_tok_s=sum(t.prefill_tok_s for t in timings),
        goodput_req_s=sum(t.goodput_req_s for t in timings),
        slo_attained_frac=(sum(t.slo_attained_frac * t.finished for t in timings) / finished
                           if finished else 0.0),
        ttft=percentiles_ms(fin["ttft_s"]), tpot=percentiles_ms(fin["tpot_s"]),
        e2e=percentiles_ms(fin["e2e_s"]),
        queue_delay_mean_s=mean_or_none(fin["queue_delay_s"]), load_stall_total_s=stall,
        load_stall_mean_s=mean_or_none(fin["load_stall_s"]),
        preemptions=sum(t.preemptions for t in timings),
        ssd_drive_writes_per_day=max(t.ssd_drive_writes_per_day for t in timings),
        extrapolated=Extrapolation(
            "; ".join(f"replica {i + 1}: {t.extrapolated.text}"
                      for i, t in enumerate(timings) if t.extrapolated.text),
            sum(t.extrapolated.steps for t in timings),
            sum(t.extrapolated.transfers for t in timings)))


def _largest(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else max(values)
