"""Stage 1 for one hardware profile: the search space, the screen and the candidate table.

Columns of the candidate table (also written as ``candidates.parquet``; docs/plan.md):
identity (candidate_id, profile, replicas, eviction, inclusive, hbm_kv_gib, dram_gib, ssd_gib,
tp; sizes per replica), price of all replicas (usd_per_h, usd_per_mtok, goodput_per_usd),
hits (hit_ratio_{hbm,dram,ssd}, hit_ratio, reused_tokens), bytes per link
({h2d,d2h,ssd_read,ssd_write}_gib), utilization of the busiest replica (util_gpu, util_<link>,
binding), latency (ttft_p50_ms, ttft_pq_ms at the SLO percentile, tpot_ms, load_stall_mean_ms,
prefill_mean_ms), capacity (max_rate_rps, goodput_rps, tokens_per_s), verdicts (stable,
feasible, infeasible_reason) and the same at twice the load (``*_2x``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.cost.model import CostModel
from kvplan.hardware.prices import PriceTable
from kvplan.plan import costing
from kvplan.plan.policy_scale import PolicyScale
from kvplan.plan.screen import BINDING_LABELS, Candidates, ScreenInput, Slo, evaluate
from kvplan.plan.space import SearchSpace, default_space
from kvplan.units import GIB

KEEP_2X = ("ttft_pq_ms", "feasible", "binding", "max_rate_rps")


@dataclass(frozen=True)
class ProfileContext:
    """One candidate profile with its cost model and capacities (per replica of tp GPUs)."""

    name: str
    cm: CostModel
    hbm_kv_max_gib: float
    dram_cap_gib: float
    ssd_cap_gib: float


def context(cm: CostModel) -> ProfileContext:
    """Per-replica capacities: the node's DRAM and SSD shared evenly by its GPUs."""
    p = cm.profile
    share = cm.tp / p.gpu.count
    return ProfileContext(name=p.name, cm=cm, hbm_kv_max_gib=cm.hbm_kv_capacity_bytes() / GIB,
                          dram_cap_gib=p.host.dram_gib * share, ssd_cap_gib=p.ssd.capacity_gib
                          * share)


def space_for(ctx: ProfileContext, trace: ScreenInput, overrides: dict) -> SearchSpace:
    """Default grids from the footprint, with the spec's overrides applied."""
    block_bytes = ctx.cm.kv_bytes_per_token * trace.stream.block_size
    footprint = trace.stream.num_blocks * block_bytes / GIB
    base = default_space(footprint, ctx.hbm_kv_max_gib, ctx.dram_cap_gib, ctx.ssd_cap_gib,
                         ctx.cm.profile.gpu.count // ctx.cm.tp)
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()
          if k not in ("tp", "ep")}
    return SearchSpace(**(base.__dict__ | kw))


def screen_profile(ctx: ProfileContext, whole: ScreenInput, routed: dict[int, list[ScreenInput]],
                   space: SearchSpace, slo: Slo, prices: PriceTable,
                   scales: dict[str, PolicyScale], max_seqs: int,
                   evaluator: Callable = evaluate) -> pl.DataFrame:
    """Screen every (replicas, eviction, tier config) of one profile; ``routed[r]`` holds the
    per-replica streams of r replicas (kvplan.plan.routing), ``whole`` the unrouted trace.
    ``evaluator``: kvplan.plan.screen.evaluate or one that fans its chunks out (same result)."""
    cfg = np.array(space.tier_configs(), dtype=np.float64)
    frames = []
    for replicas in space.replicas:
        for ev in space.evictions:
            cands = Candidates(hbm_kv_gib=cfg[:, 0], dram_gib=cfg[:, 1], ssd_gib=cfg[:, 2],
                               inclusive=cfg[:, 3].astype(bool), policy=scales[ev])
            cols = evaluator(ctx.cm, routed[replicas], cands, slo, max_seqs)
            frames.append(_frame(ctx, whole, cands, cols, ev, replicas, prices, slo))
    return pl.concat(frames)


def _frame(ctx: ProfileContext, trace: ScreenInput, c: Candidates, cols: dict, eviction: str,
           replicas: int, prices: PriceTable, slo: Slo) -> pl.DataFrame:
    cm = ctx.cm
    usd_h = replicas * costing.usd_per_hour(prices, cm.tp, c.hbm_kv_gib, c.dram_gib, c.ssd_gib)
    mean_tokens = float(np.mean(trace.input_tokens + trace.output_tokens))
    served_rps = np.where(cols["stable"], trace.rate_rps, cols["max_rate_rps"])
    tokens_s = served_rps * mean_tokens
    over = ctx.hbm_kv_max_gib + 1e-9 < c.hbm_kv_gib
    cols["feasible"] = cols["feasible"] & ~over
    reason = _reasons(cols, slo, over, c.hbm_kv_gib, trace, cm)
    base = {
        "profile": ctx.name, "replicas": replicas, "tp": cm.tp, "eviction": eviction,
        "inclusive": c.inclusive, "hbm_kv_gib": c.hbm_kv_gib, "dram_gib": c.dram_gib,
        "ssd_gib": c.ssd_gib, "usd_per_h": usd_h,
        "usd_per_mtok": costing.usd_per_mtok(usd_h, tokens_s),
        "goodput_per_usd": costing.goodput_per_usd(cols["goodput_rps"], usd_h),
        "tokens_per_s": tokens_s, "infeasible_reason": reason,
    }
    rest = {k: v for k, v in cols.items() if not k.endswith("_2x") or k[:-3] in KEEP_2X}
    df = pl.DataFrame(base | rest)
    return df.with_columns(
        pl.when(pl.col("stable")).then(pl.col(c)).otherwise(float("inf")).alias(c)
        for c in ("ttft_p50_ms", "ttft_pq_ms", "tpot_ms")
    ).with_columns(
        pl.when(pl.col("feasible_2x")).then(pl.col("ttft_pq_ms_2x")).otherwise(float("inf"))
        .alias("ttft_pq_ms_2x"))


def _reasons(cols: dict, slo: Slo, over: np.ndarray, hbm_gib: np.ndarray, trace: ScreenInput,
             cm: CostModel) -> list[str]:
    """One label per candidate: the first SLO or capacity rule it breaks ('' if feasible)."""
    longest = float(np.max(trace.input_tokens + trace.output_tokens)) * cm.kv_bytes_per_token
    rules = [
        (over, "HBM KV budget exceeds what the GPU leaves after weights"),
        (hbm_gib * GIB < longest, "longest request does not fit in HBM KV"),
        (~cols["stable"], "saturated: " + np.vectorize(BINDING_LABELS.get, otypes=[object])(
            cols["binding"])),
        (cols["ttft_pq_ms"] > (slo.ttft_ms or np.inf), f"TTFT p{slo.percentile:g} > SLO"),
        (cols["tpot_ms"] > (slo.tpot_ms or np.inf), "TPOT > SLO"),
        (cols["max_rate_rps"] < (slo.min_rate_rps or 0.0), "max rate < SLO rate"),
    ]
    out = np.full(hbm_gib.shape, "", dtype=object)
    for mask, label in reversed(rules):
        out = np.where(mask, label, out)
    return out.tolist()
