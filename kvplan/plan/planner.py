"""The plan pipeline: workload -> curves -> analytic screen -> event verification -> answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from kvplan.cost.model import GIB, CostModel
from kvplan.errors import KvplanError
from kvplan.hardware.prices import PriceTable
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model
from kvplan.plan.candidates import ProfileContext, context, screen_profile, space_for
from kvplan.plan.engines import EngineSettings, TierChoice, engine_settings
from kvplan.plan.policies import policy_scales
from kvplan.plan.prepare import prepare, scale_load
from kvplan.plan.recommend import Recommendation, pareto, rank, recommend
from kvplan.plan.screen import Trace
from kvplan.plan.spec import PlanSpec
from kvplan.plan.verify import VerifyJob, verify
from kvplan.sim.config import ReplayConfig
from kvplan.workload import Workload

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total)."""


@dataclass(frozen=True)
class PlanResult:
    """Everything a plan produced (docs/plan.md lists the columns)."""

    spec: PlanSpec
    candidates: pl.DataFrame
    """Every screened candidate, ranked."""
    curves: pl.DataFrame
    """LRU hit ratio per capacity (GiB of KV) for each profile's block size."""
    pareto_ttft: pl.DataFrame
    pareto_goodput: pl.DataFrame
    verified: pl.DataFrame
    """Analytic vs simulated figures of the verified candidates."""
    verified_requests: pl.DataFrame
    """Per-request rows of every verified run (candidate_id column added)."""
    timeseries: pl.DataFrame
    """Per-second occupancy / link utilization of the recommended run (empty if unverified)."""
    recommendation: Recommendation
    engines: list[EngineSettings]
    rate_rps: float
    notes: list[str] = field(default_factory=list)


def contexts(spec: PlanSpec, notes: list[str]) -> list[ProfileContext]:
    """Cost models of the candidate profiles; a profile whose GPUs cannot hold the weights is
    noted and skipped, and an error when no profile is left."""
    model = load_model(spec.model)
    out, errors = [], []
    for name in spec.profiles:
        try:
            cm = CostModel.build(model, load_profile(name), spec.kv_dtype,
                                 max_batched_tokens=spec.max_batched_tokens, max_seqs=spec.max_seqs)
            out.append(context(cm))
        except KvplanError as exc:
            errors.append(f"profile {name} infeasible: {exc}")
    notes.extend(errors)
    if not out:
        raise KvplanError("; ".join(errors))
    return out


def run_plan(workload: Workload, spec: PlanSpec, prices: PriceTable,
             progress: Progress | None = None) -> PlanResult:
    """Plan tier sizes and policies for ``workload`` (stage 1 and stage 2)."""
    tick = progress or (lambda stage, done, total: None)
    notes: list[str] = []
    workload = scale_load(workload, spec.load_scale)
    tick("curves", 0, 1)
    trace = prepare(workload)
    tick("curves", 1, 1)
    ctxs = contexts(spec, notes)
    frames, curves = [], []
    for i, ctx in enumerate(ctxs):
        space = space_for(ctx, trace, spec.space)
        scales = policy_scales(workload, trace, ctx, space, spec.seed)
        frames.append(screen_profile(ctx, trace, space, spec.slo, prices, scales, spec.max_seqs))
        curves.append(_curve_frame(trace, ctx))
        tick("screen", i + 1, len(ctxs))
    df = pl.concat(frames, how="diagonal_relaxed")
    df = df.with_row_index("candidate_id").with_columns(pl.col("candidate_id").cast(pl.Int64))
    ranked = rank(df, spec.objective)
    jobs = _verify_jobs(ranked, spec)
    verified, requests, series = verify(
        workload, jobs, spec.jobs, spec.verify_wall_s, spec.slo.percentile, spec.slo.ttft_ms,
        spec.slo.tpot_ms, lambda d, t: tick("verify", d, t))
    decided = _decide(ranked, verified, spec)
    ctx = next(c for c in ctxs if c.name == decided.row(0, named=True)["profile"])
    block_gib = ctx.cm.kv_bytes_per_token * trace.stream.block_size / GIB
    rec = recommend(decided, trace.curve, block_gib, trace.rate_rps,
                    "sim_feasible" if "sim_feasible" in decided.columns else "feasible")
    best = rec.best
    engines = engine_settings(TierChoice(
        block_size=trace.stream.block_size, hbm_kv_bytes=int(best["hbm_kv_gib"] * GIB),
        dram_bytes=int(best["dram_gib"] * GIB), ssd_bytes=int(best["ssd_gib"] * GIB),
        write=spec.space.get("write", "write-through"),
        prefetch=spec.space.get("prefetch", "none")))
    stable = ranked.filter(pl.col("stable"))
    return PlanResult(
        spec=spec, candidates=ranked, curves=pl.concat(curves), rate_rps=trace.rate_rps,
        pareto_ttft=pareto(stable, "usd_per_h", "ttft_pq_ms", False),
        pareto_goodput=pareto(stable, "usd_per_h", "goodput_rps", True),
        verified=verified, verified_requests=requests,
        timeseries=series.get(int(best["candidate_id"]), pl.DataFrame()),
        recommendation=rec, engines=engines, notes=notes)


def _verify_jobs(ranked: pl.DataFrame, spec: PlanSpec) -> list[VerifyJob]:
    """Top N feasible candidates and the cheapest near-misses (stable but over the SLO)."""
    top = ranked.filter(pl.col("feasible")).head(spec.verify_top)
    near = ranked.filter(~pl.col("feasible")).sort("usd_per_h").head(spec.verify_near_misses)
    if top.height == 0:
        near = ranked.head(spec.verify_top)
    rows = pl.concat([top, near]).unique("candidate_id", keep="first", maintain_order=True)
    return [VerifyJob(candidate_id=int(r["candidate_id"]), config=_config(r, spec))
            for r in rows.iter_rows(named=True)]


def _config(r: dict, spec: PlanSpec) -> ReplayConfig:
    sp = spec.space
    return ReplayConfig(
        model=spec.model, profile=r["profile"], kv_dtype=spec.kv_dtype, mode="event",
        hbm_kv_gib=float(r["hbm_kv_gib"]), dram_gib=float(r["dram_gib"]),
        ssd_gib=float(r["ssd_gib"]), eviction_hbm=r["eviction"], eviction_dram=r["eviction"],
        eviction_ssd=r["eviction"], prefetch=sp.get("prefetch", "none"),
        write=sp.get("write", "write-through"), inclusive=bool(r["inclusive"]),
        max_batched_tokens=spec.max_batched_tokens, max_seqs=spec.max_seqs,
        slo_ttft_ms=spec.slo.ttft_ms, slo_tpot_ms=spec.slo.tpot_ms, seed=spec.seed,
        max_wall_s=spec.verify_wall_s)


def _decide(ranked: pl.DataFrame, verified: pl.DataFrame, spec: PlanSpec) -> pl.DataFrame:
    """The event simulator decides: verified rows that meet the SLO in simulation come first."""
    if verified.height == 0:
        return ranked
    sim = verified.select("candidate_id", "sim_feasible")
    joined = ranked.join(sim, on="candidate_id", how="left").with_columns(
        pl.col("sim_feasible").fill_null(False))
    order = ["sim_feasible", "feasible"]
    return joined.sort(order, descending=[True, True], maintain_order=True)


def _curve_frame(trace: Trace, ctx: ProfileContext) -> pl.DataFrame:
    """The LRU curve at 200 capacities from 0 to the footprint, in GiB of this model's KV."""
    block_gib = ctx.cm.kv_bytes_per_token * trace.stream.block_size / GIB
    caps = np.unique(np.linspace(0, trace.stream.num_blocks, 200).astype(np.int64))
    return pl.DataFrame({"profile": ctx.name, "capacity_blocks": caps,
                         "capacity_gib": caps * block_gib,
                         "hit_ratio": trace.curve.hit_ratio(caps)})
