"""Ranking, Pareto frontiers and the recommendation with its reasons in plain words."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.plan.curves import HitCurve

ASCENDING = {"usd_per_h": True, "usd_per_mtok": True, "goodput_per_usd": False}


def rank(df: pl.DataFrame, objective: str) -> pl.DataFrame:
    """Feasible rows by the objective (ties: TTFT, id); then infeasible ones, closest first
    (fits in HBM, stable, lowest TTFT, highest sustainable rate, cheapest)."""
    asc = ASCENDING[objective]
    ok = df.filter(pl.col("feasible")).sort([objective, "ttft_pq_ms", "candidate_id"],
                                             descending=[not asc, False, False])
    bad = df.filter(~pl.col("feasible")).sort(
        ["fits_hbm", "stable", pl.col("ttft_pq_ms").round_sig_figs(2),
         pl.col("max_rate_rps").round_sig_figs(3), "usd_per_h", "candidate_id"],
        descending=[True, True, False, True, False, False])
    return pl.concat([ok, bad])


def pareto(df: pl.DataFrame, x: str, y: str, y_higher_better: bool) -> pl.DataFrame:
    """Rows no other row beats on both ``x`` (lower better) and ``y``.

    Example: (cost, ttft) = (1, 5), (2, 3), (3, 4) -> the first two.
    """
    d = df.filter(pl.col(y).is_finite()).sort([x, y], descending=[False, y_higher_better])
    best = -np.inf if y_higher_better else np.inf
    keep = []
    for v in d[y].to_list():
        better = v > best if y_higher_better else v < best
        keep.append(better)
        if better:
            best = v
    return d.filter(pl.Series(keep, dtype=pl.Boolean))


def knee_capacity(curve: HitCurve, max_blocks: int) -> int:
    """Capacity (blocks) at the knee of the LRU hit-ratio curve (Kneedle: farthest point above
    the chord from 0 to ``max_blocks``, on normalized axes)."""
    if max_blocks <= 0 or curve.total == 0:
        return 0
    caps = np.unique(np.linspace(0, max_blocks, 400).astype(np.int64))
    h = curve.hit_ratio(caps)
    top = h[-1] if h[-1] > 0 else 1.0
    return int(caps[np.argmax(h / top - caps / max_blocks)])


@dataclass(frozen=True)
class Recommendation:
    """The answer: a chosen row, a runner-up, and why."""

    feasible: bool
    """True when the chosen configuration meets the SLO (in simulation where verified)."""
    best: dict
    runner_up: dict | None
    reasons: list[str]
    """Plain-language explanation, one sentence each."""
    what_would: str
    """When nothing is feasible: what would make the best candidate meet the SLO."""


def recommend(ranked: pl.DataFrame, curve: HitCurve, block_gib: float, rate_rps: float,
              decided: str) -> Recommendation:
    """Pick the first row of ``ranked`` (already ordered by what decides) and explain it."""
    rows = ranked.to_dicts()
    best = rows[0]
    runner = next((r for r in rows[1:] if _tiers(r) != _tiers(best)), None)
    feasible = bool(best[decided])
    reasons = [_knee(best, curve, block_gib), _binding(best), _policy(ranked, best),
               _twice(best)]
    what = "" if feasible else _what_would(best, rate_rps)
    return Recommendation(feasible, best, runner, [r for r in reasons if r], what)


def _tiers(r: dict) -> tuple:
    return (r["profile"], r["hbm_kv_gib"], r["dram_gib"], r["ssd_gib"], r["inclusive"])


def _knee(r: dict, curve: HitCurve, block_gib: float) -> str:
    total = curve.distance[-1] + 1 if curve.distance.size else 0
    knee = knee_capacity(curve, int(total))
    knee_gib = knee * block_gib
    cache = r["hbm_kv_gib"] + r["dram_gib"] + r["ssd_gib"]
    where = "past" if cache >= knee_gib else "short of"
    return (f"Knee of the LRU hit-ratio curve at {knee_gib:,.0f} GiB "
            f"(hit ratio {float(curve.hit_ratio(knee)):.1%}); the chosen {cache:,.0f} GiB of "
            f"cache is {where} it and serves {r['hit_ratio']:.1%} of prompt blocks "
            f"(HBM {r['hit_ratio_hbm']:.1%}, DRAM {r['hit_ratio_dram']:.1%}, "
            f"SSD {r['hit_ratio_ssd']:.1%}).")


def _binding(r: dict) -> str:
    name = r["binding"]
    return (f"Binding resource: {name} at {r['util_' + name]:.0%} utilization "
            f"(GPU {r['util_gpu']:.0%}, H2D {r['util_h2d']:.0%}, SSD read "
            f"{r['util_ssd_read']:.0%}); mean load stall {r['load_stall_mean_ms']:.1f} ms.")


def _policy(df: pl.DataFrame, best: dict) -> str:
    same = df.filter((pl.col("profile") == best["profile"])
                     & (pl.col("hbm_kv_gib") == best["hbm_kv_gib"])
                     & (pl.col("dram_gib") == best["dram_gib"])
                     & (pl.col("ssd_gib") == best["ssd_gib"])
                     & (pl.col("inclusive") == best["inclusive"]))
    if same.height < 2:
        return ""
    worst = same.sort("hit_ratio").row(0, named=True)
    gain = best["hit_ratio"] - worst["hit_ratio"]
    if abs(gain) < 0.01:
        return (f"Eviction policy hardly mattered at these sizes ({best['eviction']} vs "
                f"{worst['eviction']}: {gain:+.1%} hit ratio).")
    return (f"Policy that mattered: {best['eviction']} serves {gain:+.1%} more prompt blocks "
            f"than {worst['eviction']} at the same sizes.")


def _twice(r: dict) -> str:
    if r["feasible_2x"]:
        return (f"At 2x the load it still meets the SLO: TTFT p-target "
                f"{r['ttft_pq_ms_2x']:,.0f} ms, binding {r['binding_2x']}.")
    return (f"At 2x the load it would not: {r['binding_2x']} saturates or TTFT exceeds the "
            f"target (max sustainable {r['max_rate_rps']:.2f} req/s at this size).")


def _what_would(r: dict, rate_rps: float) -> str:
    frac = r["max_rate_rps"] / rate_rps if rate_rps else 0.0
    reps = int(np.ceil(1.0 / max(frac, 1e-9)))
    return (f"Nothing meets the SLO at {rate_rps:.2f} req/s. The best candidate sustains about "
            f"{r['max_rate_rps']:.2f} req/s ({frac:.0%} of the load): serve the trace with "
            f"{reps} replicas, or plan at --load-scale {min(frac, 1.0):.2f}; its first broken "
            f"rule: {r['infeasible_reason']}.")
