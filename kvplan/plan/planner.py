"""The plan pipeline: workload -> curves -> analytic screen -> event verification -> answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from kvplan.cost.layout import Layout
from kvplan.cost.model import CostModel
from kvplan.errors import KvplanError
from kvplan.hardware.prices import PriceTable
from kvplan.hardware.profile import load_profile
from kvplan.memory import return_freed
from kvplan.model.spec import load_model
from kvplan.plan.candidates import ProfileContext, context, screen_profile, space_for
from kvplan.plan.curves import HitCurve, pooled_curve
from kvplan.plan.engines import (
    EnginePlan,
    EngineSettings,
    deployable_mask,
    engine_plans,
    recommended_settings,
    searched_engines,
)
from kvplan.plan.executor import PlanExecutor, ShardedScreen, Shared
from kvplan.plan.headroom import headroom_note
from kvplan.plan.policy_scale import LRU_SCALE, policy_scales
from kvplan.plan.prepare import prepare, replica_trace, scale_load
from kvplan.plan.recommend import (
    ASCENDING,
    Recommendation,
    outcomes,
    pareto,
    rank,
    recommend,
)
from kvplan.plan.routing import assign_replicas, split
from kvplan.plan.sampling import choose_sample_rate, method_words, subset_error
from kvplan.plan.screen import Candidates, ScreenInput, candidate_thresholds, evaluate
from kvplan.plan.space import SearchSpace
from kvplan.plan.spec import PlanSpec
from kvplan.plan.stream import head_first, num_accesses
from kvplan.plan.verify import VerifyJob, WorkerFigures, files_of, verification_pool, verify
from kvplan.plan.window import Window, busiest_window, cut
from kvplan.sim.config import ReplayConfig
from kvplan.sim.policies import eviction_policy
from kvplan.sim.verdict import run_figures, screen_figures, verdict
from kvplan.units import GIB
from kvplan.workload import Workload

NEAR_MISS_TTFT_FACTOR = 4.0
"""Near-misses worth simulating have a screen TTFT within this factor of the target (the
screen's TTFT runs up to ~3x the simulator's at high utilization; docs/plan.md)."""
Progress = Callable[[str, int, int], None]
"""progress(stage, done, total)."""


@dataclass(frozen=True)
class PlanResult:
    """Everything a plan produced (docs/plan.md lists the columns)."""

    spec: PlanSpec
    candidates: pl.DataFrame
    """Every screened candidate in the decided order (the recommendation first; offline
    bounds last), with ``verified``, the simulated figures that decided, ``recommended`` and
    ``outcome`` (why each one is or is not the recommendation)."""
    curves: pl.DataFrame
    """LRU hit ratio per per-replica capacity (GiB of KV) for each profile and replica count."""
    pareto_ttft: pl.DataFrame
    """Cost vs screen TTFT frontier of the runnable online candidates (stable, fitting in
    HBM, not a bound), with their ``outcome``."""
    pareto_goodput: pl.DataFrame
    verified: pl.DataFrame
    """Analytic vs simulated figures of the verified candidates."""
    verified_requests: pl.DataFrame
    """Per-request rows of every verified run (candidate_id and replica columns added)."""
    timeseries: pl.DataFrame
    """Per-second occupancy / link utilization of the recommended run's replicas (replica
    column; empty if unverified)."""
    recommendation: Recommendation
    engines: list[EngineSettings]
    rate_rps: float
    curve_method: str
    """How the hit-ratio curves were made: "exact (N accesses)" or the SHARDS rate, sample
    size and measured error (kvplan.plan.sampling.method_words)."""
    notes: list[str] = field(default_factory=list)
    workers: WorkerFigures | None = None
    """What event verification cost in its worker processes (None: nothing verified)."""
    engine_plans: list[EnginePlan] = field(default_factory=list)
    """Each searched engine's recommendation (empty for --engine none)."""


def contexts(spec: PlanSpec, notes: list[str]) -> list[ProfileContext]:
    """Cost models of every (profile, tp) the plan searches; a layout the GPUs cannot hold is
    noted and skipped, and an error when none is left.

    tp grid: ``space.tp``, else the fewest GPUs that hold the weights and twice that (when the
    node has them); ``space.ep`` > 1 spreads an MoE model's experts over each replica's tp
    GPUs (only tp = ep is searched then).
    """
    model = load_model(spec.model)
    ep = int(spec.space.get("ep", 1))
    out, errors = [], []
    for name in spec.profiles:
        profile = load_profile(name)
        try:
            for tp in tp_grid(model, profile, spec, ep):
                cm = CostModel.build(model, profile, spec.kv_dtype, layout=Layout(tp=tp, ep=ep),
                                     max_batched_tokens=spec.max_batched_tokens,
                                     max_seqs=spec.max_seqs)
                cm.hbm_kv_capacity_bytes()
                out.append(context(cm))
        except KvplanError as exc:
            errors.append(f"profile {name} infeasible: {exc}")
    notes.extend(errors)
    if not out:
        raise KvplanError("; ".join(errors))
    return out


def tp_grid(model, profile, spec: PlanSpec, ep: int) -> list[int]:
    """The tp values searched on one profile (contexts)."""
    if ep > 1:
        return [ep]
    if spec.space.get("tp"):
        return sorted(set(spec.space["tp"]))
    smallest = CostModel.build(model, profile, spec.kv_dtype,
                               max_batched_tokens=spec.max_batched_tokens,
                               max_seqs=spec.max_seqs).tp
    double = 2 * smallest
    fits = double <= profile.gpu.count and model.num_heads % double == 0
    return [smallest, double] if fits else [smallest]


def run_plan(workload: Workload, spec: PlanSpec, prices: PriceTable,
             progress: Progress | None = None, pool: PlanExecutor | None = None) -> PlanResult:
    """Plan replicas, tier sizes and policies for ``workload`` (stage 1 and stage 2).

    ``pool``: an executor already starting (kvplan.plan.verify.verification_pool: a local
    process pool or Ray); None = start a local pool here when the spec verifies anything.
    """
    tick = progress or (lambda stage, done, total: None)
    if pool is not None:
        return _plan(workload, spec, prices, tick, pool)
    with verification_pool(spec.jobs, spec.verify_top > 0) as own:
        return _plan(workload, spec, prices, tick, own)


def _plan(workload: Workload, spec: PlanSpec, prices: PriceTable, tick: Progress,
          pool: PlanExecutor | None) -> PlanResult:
    notes: list[str] = []
    workload = scale_load(workload, spec.load_scale)
    tick("curves", 0, 1)
    rate = choose_sample_rate(num_accesses(workload), spec.exact_max_accesses, spec.sample_rate)
    whole = prepare(workload, sample_rate=rate, seed=spec.seed)
    tick("curves", 1, 1)
    ctxs = contexts(spec, notes)
    routes = Routes(workload, whole, spec.seed)
    spaces = [space_for(ctx, whole, spec.space) for ctx in ctxs]
    spaces = [replace(s, replicas=routes.usable(s.replicas, notes)) for s in spaces]
    method = _curve_method(whole, ctxs, spaces, spec.seed)
    counts = sorted({r for s in spaces for r in s.replicas})
    for i, r in enumerate(counts):
        tick("routing", i, len(counts))
        routes.traces(r)
    tick("routing", len(counts), len(counts))
    ranked, curves = _screen(routes, ctxs, spaces, spec, prices, tick, pool)
    routes.keep_curves_only()  # verification's workers need the memory more
    verified, requests, series, workers = pl.DataFrame(), pl.DataFrame(), {}, None
    if pool is not None and spec.verify_top > 0:
        tick("verify", 0, 1)
        window = None if spec.verify_window_s is None else busiest_window(
            whole.arrival_s, spec.verify_window_s, whole.input_tokens + whole.output_tokens)
        if window is not None:
            notes.append(window.words())
        jobs = _verify_jobs(_engine_verify_rows(ranked, whole, spec), spec, routes, pool,
                            profile_sources(spec), window)
        return_freed()  # the sub-workloads, split and shared: 0.5 GB on a 48 M-block trace
        verified, requests, series, workers = verify(
            pool, jobs, spec.verify_wall_s, spec.slo.percentile, spec.slo.ttft_ms,
            spec.slo.tpot_ms, lambda d, t: tick("verify", d, t), window)
        notes += _capped_note(verified, spec)
    tick("recommend", 0, 1)
    if verified.height:
        verified = with_sim_verdicts(verified, requests)
    decided = _decide(ranked, verified, spec)
    feasible_col = "sim_feasible" if "sim_feasible" in decided.columns else "feasible"
    plans = engine_plans(decided, feasible_col, whole.stream.block_size, spec)
    deployable = _runnable(decided.filter(~pl.col("bound")), whole, spec, notes)
    top = deployable.row(0, named=True)
    ctx = next(c for c in ctxs if (c.name, c.cm.tp) == (top["profile"], top["tp"]))
    block_gib = ctx.cm.kv_bytes_per_token * whole.stream.block_size / GIB
    rec = recommend(deployable, routes.curve(top["replicas"]), block_gib, whole.rate_rps,
                    feasible_col, max(max(s.replicas) for s in spaces))
    final = _recommended_first(decided.with_columns(
        (pl.col("candidate_id") == rec.best["candidate_id"]).alias("recommended"),
        pl.Series("outcome", outcomes(decided, rec, spec.objective, spec.slo), pl.String)),
        deployable)
    runnable = final.filter(pl.col("stable") & pl.col("fits_hbm") & ~pl.col("bound"))
    if pool is not None and spec.verify_top > 0:
        notes += headroom_note(_config(rec.best, spec, profile_sources(spec)),
                               lambda: routes.parts(int(rec.best["replicas"])))
    tick("recommend", 1, 1)
    return PlanResult(
        spec=spec, candidates=final, curves=curves, rate_rps=whole.rate_rps,
        pareto_ttft=pareto(runnable, "usd_per_h", "ttft_pq_ms", False),
        pareto_goodput=pareto(runnable, "usd_per_h", "goodput_rps", True),
        verified=verified, verified_requests=requests,
        timeseries=series.get(int(rec.best["candidate_id"]), pl.DataFrame()),
        recommendation=rec, engines=[p.settings for p in plans if p.settings] if plans
        else _engines(rec.best, whole, spec), curve_method=method, notes=notes,
        workers=workers, engine_plans=plans)


def _curve_method(whole: ScreenInput, ctxs: list[ProfileContext], spaces: list[SearchSpace],
                  seed: int) -> str:
    """Exact, or SHARDS with its error against exact on a subset at the screen's capacities
    (every tier threshold of every profile's space, as a share of one replica's blocks)."""
    n = whole.stream.num_accesses
    if whole.sample_rate is None:
        return method_words(n)
    fractions = []
    for ctx, space in zip(ctxs, spaces, strict=True):
        cfg = np.array(space.tier_configs(), dtype=np.float64)
        thr = candidate_thresholds(Candidates(cfg[:, 0], cfg[:, 1], cfg[:, 2],
                                              cfg[:, 3].astype(bool), LRU_SCALE),
                                   ctx.cm.kv_bytes_per_token * whole.stream.block_size)
        fractions += [np.unique(thr) * r / max(whole.stream.num_blocks, 1)
                      for r in space.replicas]
    frac = np.unique(np.minimum(np.concatenate(fractions), 1.0))
    err = subset_error(whole.stream, whole.sample_rate, seed, frac)
    return method_words(n, whole.sample_rate, whole.sampled_accesses or 0, err)


def _screen(routes: Routes, ctxs: list[ProfileContext], spaces: list[SearchSpace],
            spec: PlanSpec, prices: PriceTable, tick: Progress, pool: PlanExecutor | None
            ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stage 1 over every profile: the ranked candidate table and the LRU curves (the
    screen's shards run as tasks where the executor says so, with the same result)."""
    evaluator = ShardedScreen(pool) if pool is not None and pool.remote_screen else evaluate
    whole = routes.whole
    scales, by_block = [], {}
    for i, space in enumerate(spaces):
        tick("policies", i, len(ctxs))
        if space.evictions not in by_block:  # hits depend on blocks alone
            by_block[space.evictions] = policy_scales(head_first(whole.stream), whole.curve,
                                                      space.evictions)
        scales.append(by_block[space.evictions])
    tick("policies", len(ctxs), len(ctxs))
    frames, curves, drawn = [], [], set()
    for i, (ctx, space) in enumerate(zip(ctxs, spaces, strict=True)):
        tick("screen", i, len(ctxs))
        streams = {r: routes.traces(r) for r in space.replicas}
        frames.append(screen_profile(ctx, whole, streams, space, spec.slo, prices, scales[i],
                                     spec.max_seqs, evaluator))
        curves += [_curve_frame(routes.curve(r), whole, ctx, r) for r in space.replicas
                   if (ctx.name, r) not in drawn]
        drawn |= {(ctx.name, r) for r in space.replicas}
    tick("screen", len(ctxs), len(ctxs))
    df = pl.concat(frames, how="diagonal_relaxed")
    df = df.with_row_index("candidate_id").with_columns(pl.col("candidate_id").cast(pl.Int64))
    return rank(with_screen_verdicts(with_bounds(df), whole.rate_rps), spec.objective), \
        pl.concat(curves)


def with_bounds(df: pl.DataFrame) -> pl.DataFrame:
    """``bound``: the candidate's eviction policy is an offline oracle (a bound, never a
    recommendation); a search space of bounds only is refused."""
    oracles = [n for n in df["eviction"].unique().to_list() if eviction_policy(n).is_oracle]
    if df["eviction"].is_in(oracles).all():
        raise KvplanError(f"eviction {', '.join(oracles)} is an offline bound (it reads the "
                          "trace's future), never a recommendation; search an online policy "
                          "beside it (lru, fifo, arc, s3fifo, lfu) to see how far each is "
                          "from the bound")
    return df.with_columns(pl.col("eviction").is_in(oracles).alias("bound"))


def with_screen_verdicts(df: pl.DataFrame, rate_rps: float) -> pl.DataFrame:
    """``load_state`` / ``load_reason``: the screen's saturation verdict of every candidate
    (kvplan.sim.verdict: the offered rate against the highest rate it sustains)."""
    found = [verdict(screen_figures(rate_rps, m)) for m in df["max_rate_rps"].to_list()]
    return df.with_columns(pl.Series("load_state", [v.state for v in found], pl.String),
                           pl.Series("load_reason", [v.reason for v in found], pl.String))


def with_sim_verdicts(verified: pl.DataFrame, requests: pl.DataFrame) -> pl.DataFrame:
    """``sim_load_state`` / ``sim_load_reason``: the saturation verdict of every verified
    candidate from its simulated requests, pooled over replicas (kvplan.sim.verdict)."""
    states, reasons = [], []
    for r in verified.iter_rows(named=True):
        req = requests.filter(pl.col("candidate_id") == r["candidate_id"]) if \
            requests.height else requests
        if req.height == 0:
            states.append(None)
            reasons.append(f"not simulated ({r['sim_stop_reason']})")
            continue
        stop = r["sim_stop_reason"] or "done"
        v = verdict(run_figures(req["arrival_s"].to_numpy(), req["finish_s"].to_numpy(),
                                int(req["preemptions"].sum()), stop))
        states.append(v.state)
        reasons.append(v.reason)
    return verified.with_columns(pl.Series("sim_load_state", states, pl.String),
                                 pl.Series("sim_load_reason", reasons, pl.String))


def _engine_verify_rows(ranked: pl.DataFrame, whole: ScreenInput, spec: PlanSpec
                        ) -> pl.DataFrame:
    """The rows to verify: each searched engine's among what it runs (kvplan.plan.engines)
    and the free search's best and near-misses (for the what-if), each candidate once; with no
    engine, the free search's."""
    names = searched_engines(spec)
    if not names:
        return _verify_rows(ranked, spec)
    frames = [_verify_rows(ranked.filter(deployable_mask(ranked, name, whole.stream.block_size,
                                                         spec)), spec) for name in names]
    frames.append(_verify_rows(ranked, replace(spec, verify_top=1)))
    return pl.concat(frames).unique("candidate_id", keep="first", maintain_order=True)


def _runnable(decided: pl.DataFrame, whole: ScreenInput, spec: PlanSpec, notes: list[str]
              ) -> pl.DataFrame:
    """The decided rows some searched engine runs (all rows for the free search, or with a
    note when no engine runs any)."""
    names = searched_engines(spec)
    if not names:
        return decided
    mask = pl.Series([False] * decided.height)
    for name in names:
        mask = mask | deployable_mask(decided, name, whole.stream.block_size, spec)
    if not mask.any():
        notes.append("no searched engine runs any candidate: the recommendation is the free "
                     "search's (--engine none)")
        return decided
    return decided.filter(mask)


def _recommended_first(final: pl.DataFrame, deployable: pl.DataFrame) -> pl.DataFrame:
    """The recommendation first, then the decided order; an online row no searched engine runs
    says so in ``outcome`` (a what-if, kvplan.plan.engines)."""
    what_if = ~pl.col("bound") & ~pl.col("candidate_id").is_in(deployable["candidate_id"])
    final = final.with_columns(
        pl.when(what_if).then(pl.lit("not deployable (what-if): ") + pl.col("outcome"))
        .otherwise(pl.col("outcome")).alias("outcome"))
    return pl.concat([final.filter(pl.col("recommended")), final.filter(~pl.col("recommended"))])


def _engines(best: dict, whole: ScreenInput, spec: PlanSpec) -> list[EngineSettings]:
    """Engine settings for one replica of the chosen configuration."""
    return recommended_settings(best, whole.stream.block_size, spec)


class Routes:
    """The workload routed to each replica count (kvplan.plan.routing), prepared once.

    Per replica count: the replica of every request, and each replica's trace cut from the
    whole trace's dense block ids (no re-hashing). Sub-workloads (Arrow tables) are built only
    for the replica counts that event verification needs.
    """

    def __init__(self, workload: Workload, whole: ScreenInput, seed: int = 0) -> None:
        self.workload, self.whole, self.seed = workload, whole, seed
        self._replica_of: dict[int, np.ndarray] = {}
        self._traces: dict[int, list[ScreenInput]] = {}
        self._curves: dict[int, list[HitCurve]] = {}

    def replica_of(self, replicas: int) -> np.ndarray:
        """Replica index of every request (kvplan.plan.routing.assign_replicas)."""
        if replicas not in self._replica_of:
            self._replica_of[replicas] = assign_replicas(self.workload, replicas)
        return self._replica_of[replicas]

    def parts(self, replicas: int) -> list[Workload]:
        """The requests of each of ``replicas`` replicas (kvplan.plan.routing.route)."""
        return split(self.workload, self.replica_of(replicas), replicas) if replicas > 1 else [
            self.workload]

    def usable(self, counts: tuple[int, ...], notes: list[str]) -> tuple[int, ...]:
        """Replica counts for which every replica gets requests (others are noted)."""
        ok = tuple(r for r in counts
                   if np.all(np.bincount(self.replica_of(r), minlength=r) > 0))
        if len(ok) < len(counts):
            notes.append(f"replica counts {sorted(set(counts) - set(ok))} skipped: routing leaves "
                         "a replica without requests")
        if not ok:
            raise KvplanError("search space is empty: no replica count gives every replica "
                              "requests")
        return ok

    def traces(self, replicas: int) -> list[ScreenInput]:
        """Each replica's stack distances and curve, at the whole trace's arrival span (and
        the whole trace's sample rate when it is sampled)."""
        if replicas not in self._traces:
            rep = self.replica_of(replicas)
            self._traces[replicas] = [self.whole] if replicas == 1 else [
                replica_trace(self.whole, np.flatnonzero(rep == r), self.seed)
                for r in range(replicas)]
        return self._traces[replicas]

    def curve(self, replicas: int) -> HitCurve:
        """LRU hits with every replica at the same capacity, pooled over replicas."""
        curves = self._curves.get(replicas) or [t.curve for t in self.traces(replicas)]
        return pooled_curve(curves)

    def keep_curves_only(self) -> None:
        """Drop the replicas' traces once the screen is done, keeping their curves: each
        replica count's traces hold a copy of every access's dense id (194 MB per count on a
        48 M-access workload), which later stages never read."""
        self._curves |= {r: [t.curve for t in ts] for r, ts in self._traces.items()}
        self._traces.clear()


def _verify_rows(ranked: pl.DataFrame, spec: PlanSpec) -> pl.DataFrame:
    """The top N feasible candidates and the near-misses.

    Near-misses: stable candidates cheaper than every feasible one that the screen rejects
    with a TTFT within NEAR_MISS_TTFT_FACTOR x the target, the closest to feasible of each
    (profile, replica count), cheapest first; the screen's queueing figures are approximate,
    so the simulator may accept them. With nothing feasible: the N closest candidates.
    """
    ranked = ranked.filter(~pl.col("bound"))
    ok = ranked.filter(pl.col("feasible"))
    if ok.height == 0:
        return ranked.head(spec.verify_top)
    ttft_cap = NEAR_MISS_TTFT_FACTOR * (spec.slo.ttft_ms or float("inf"))
    near = ranked.filter(~pl.col("feasible") & pl.col("stable") & pl.col("fits_hbm")
                         & (pl.col("usd_per_h") < ok["usd_per_h"].min())
                         & (pl.col("ttft_pq_ms") <= ttft_cap))
    near = near.unique(["profile", "tp", "replicas"], keep="first", maintain_order=True)
    return pl.concat([ok.head(spec.verify_top),
                      near.sort("usd_per_h").head(spec.verify_near_misses)])


def _verify_jobs(rows: pl.DataFrame, spec: PlanSpec, routes: Routes, executor: PlanExecutor,
                 profiles: dict[str, str], window: Window | None = None) -> list[VerifyJob]:
    """One job per replica of each row; each replica count's sub-workloads are built (cut to
    ``window``) and shared with the workers once, whichever candidates replay them."""
    configs = [_config(r, spec, profiles) for r in rows.iter_rows(named=True)]
    files = files_of(executor, configs)
    parts: dict[int, list[tuple[Shared, int]]] = {}
    for n in sorted(set(rows["replicas"].to_list())):
        cuts = [w if window is None else cut(w, window) for w in routes.parts(n)]
        parts[n] = [(executor.share(w), w.num_requests) for w in cuts]
    return [VerifyJob(candidate_id=int(r["candidate_id"]), replica=i, workload=w, config=cfg,
                      files=files, requests=size)
            for r, cfg in zip(rows.iter_rows(named=True), configs, strict=True)
            for i, (w, size) in enumerate(parts[int(r["replicas"])]) if size]


def _capped_note(verified: pl.DataFrame, spec: PlanSpec) -> list[str]:
    """A note when verification runs stopped at a cap: those candidates failed for want of
    time, not by the SLO."""
    if verified.height == 0:
        return []
    reasons = verified["sim_stop_reason"].fill_null("").to_list()
    capped = sum("cap" in r or "timed out" in r for r in reasons)
    if not capped:
        return []
    return [f"{capped} of {len(reasons)} verified candidates stopped before replaying every "
            f"request (wall cap {spec.verify_wall_s:g} s per run): they count as not meeting "
            "the SLO; raise --verify-wall-s for this trace, or --verify-window"]


def profile_sources(spec: PlanSpec) -> dict[str, str]:
    """Profile name -> how the spec names it (a bundled name or a TOML path), so that a
    verification loads the same file the screen used."""
    out = {}
    for src in spec.profiles:
        try:
            out[load_profile(src).name] = src
        except KvplanError:
            continue
    return out


def _config(r: dict, spec: PlanSpec, profiles: dict[str, str]) -> ReplayConfig:
    sp = spec.space
    ep = int(sp.get("ep", 1))
    return ReplayConfig(
        model=spec.model, profile=profiles.get(r["profile"], r["profile"]),
        kv_dtype=spec.kv_dtype, mode="event",
        layout=Layout(tp=int(r["tp"]), dp=int(r["replicas"]), ep=ep),
        hbm_kv_gib=float(r["hbm_kv_gib"]), dram_gib=float(r["dram_gib"]),
        ssd_gib=float(r["ssd_gib"]), eviction_hbm=r["eviction"], eviction_dram=r["eviction"],
        eviction_ssd=r["eviction"], prefetch=sp.get("prefetch", "none"),
        write=sp.get("write", "write-through"), inclusive=bool(r["inclusive"]),
        max_batched_tokens=spec.max_batched_tokens, max_seqs=spec.max_seqs,
        slo_ttft_ms=spec.slo.ttft_ms, slo_tpot_ms=spec.slo.tpot_ms,
        max_wall_s=spec.verify_wall_s, arrivals=spec.arrivals)



DECIDING = ("sim_feasible", "sim_ttft_pq_ms", "sim_tpot_ms", "sim_finished_frac",
            "sim_stop_reason", "sim_load_state", "sim_load_reason")
"""Simulated figures joined to the candidates table (what decided, and why a row lost)."""


def _decide(ranked: pl.DataFrame, verified: pl.DataFrame, spec: PlanSpec) -> pl.DataFrame:
    """The event simulator decides: candidates that meet the SLO in simulation come first, by
    the objective; then the rest in screen order (``verified`` and the DECIDING figures
    joined)."""
    if verified.height == 0:
        return ranked.with_columns(pl.lit(False).alias("verified"))
    sim = verified.select("candidate_id", *(c for c in DECIDING if c in verified.columns)
                          ).with_columns(pl.lit(True).alias("verified"))
    joined = ranked.join(sim, on="candidate_id", how="left", maintain_order="left").with_columns(
        pl.col("sim_feasible").fill_null(False), pl.col("verified").fill_null(False))
    asc = ASCENDING[spec.objective]
    passed = joined.filter(pl.col("sim_feasible")).sort(
        [spec.objective, "sim_ttft_pq_ms", "candidate_id"], descending=[not asc, False, False])
    return pl.concat([passed, joined.filter(~pl.col("sim_feasible"))])


def _curve_frame(curve: HitCurve, whole: ScreenInput, ctx: ProfileContext, replicas: int
                 ) -> pl.DataFrame:
    """The LRU curve of ``replicas`` replicas (each at the same per-replica capacity, pooled)
    at 200 capacities from 0 to the footprint, in GiB of this model's KV."""
    block_gib = ctx.cm.kv_bytes_per_token * whole.stream.block_size / GIB
    caps = np.unique(np.linspace(0, whole.stream.num_blocks, 200).astype(np.int64))
    return pl.DataFrame({"profile": ctx.name, "replicas": replicas, "capacity_blocks": caps,
                         "capacity_gib": caps * block_gib, "hit_ratio": curve.hit_ratio(caps)})
