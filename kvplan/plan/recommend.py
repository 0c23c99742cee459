"""Ranking, Pareto frontiers and the recommendation with its reasons in plain words."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.plan.curves import HitCurve
from kvplan.plan.screen import BINDING_LABELS

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
    runner_up_diff: str
    """How the runner-up differs from the best, in words ('' without a runner-up)."""
    reasons: list[str]
    """Plain-language explanation, one sentence each."""
    what_would: str
    """When nothing is feasible: what would make the best candidate meet the SLO."""


CHOICE = (("profile", "profile", ""), ("replicas", "replicas", ""),
          ("hbm_kv_gib", "HBM KV", " GiB"), ("dram_gib", "DRAM", " GiB"),
          ("ssd_gib", "SSD", " GiB"), ("eviction", "eviction", ""))
"""What a user chooses (column, words, unit); ``inclusive`` only breaks ties."""


def recommend(ranked: pl.DataFrame, curve: HitCurve, block_gib: float, rate_rps: float,
              decided: str, max_replicas: int) -> Recommendation:
    """Pick the first row of ``ranked`` (already ordered by what decides) and explain it.

    ``curve`` is the pooled per-replica LRU curve of the chosen replica count; the runner-up
    is the next row that differs in a sizing or policy choice (else only in the hierarchy).
    """
    rows = ranked.to_dicts()
    best = rows[0]
    runner = next((r for r in rows[1:] if _choice(r) != _choice(best)),
                  next((r for r in rows[1:] if r["inclusive"] != best["inclusive"]), None))
    feasible = bool(best[decided])
    reasons = [_replicas(ranked, best, max_replicas, feasible), _knee(best, curve, block_gib),
               _binding(best), _policy(ranked, best), _twice(best)]
    what = "" if feasible else _what_would(best, rate_rps, max_replicas)
    return Recommendation(feasible, best, runner, _diff(best, runner) if runner else "",
                          [r for r in reasons if r], what)


def _choice(r: dict) -> tuple:
    return tuple(r[c] for c, _, _ in CHOICE)


def _diff(best: dict, other: dict) -> str:
    """Example: 'DRAM 78 -> 160 GiB, +$0.014/h'."""
    parts = [f"{words} {_num(best[c])} -> {_num(other[c])}{unit}" for c, words, unit in CHOICE
             if best[c] != other[c]]
    if best["inclusive"] != other["inclusive"]:
        parts.append(f"tiers {_hierarchy(best)} -> {_hierarchy(other)}")
    more = other["usd_per_h"] - best["usd_per_h"]
    return ", ".join(parts) + (f", {more:+,.3f} $/h" if abs(more) >= 5e-4 else ", same $/h")


def _num(v) -> str:
    return f"{v:,g}" if isinstance(v, float) else str(v)


def _hierarchy(r: dict) -> str:
    return "inclusive" if r["inclusive"] else "exclusive"


def _replicas(df: pl.DataFrame, best: dict, max_replicas: int, feasible: bool) -> str:
    """Why this many replicas: what the best candidate with fewer does wrong."""
    n = best["replicas"]
    fewer = df.filter((pl.col("profile") == best["profile"]) & (pl.col("replicas") < n))
    if fewer.height == 0:
        return (f"One replica is enough (up to {max_replicas} priced); more would only add "
                "cost." if feasible and max_replicas > 1 else "")
    r = fewer.row(0, named=True)
    why = r["infeasible_reason"] or "it ranks lower on the objective"
    figures = [] if math.isinf(r["ttft_pq_ms"]) else [f"screen TTFT {r['ttft_pq_ms']:,.0f} ms"]
    if r.get("sim_ttft_pq_ms") is not None and not r.get("sim_feasible", True):
        figures.append(f"simulated {r['sim_ttft_pq_ms']:,.0f} ms")
    detail = f" ({', '.join(figures)})" if figures else ""
    return (f"{n} replicas: the best candidate with {r['replicas']} (#{r['candidate_id']}) "
            f"does not qualify: {why}{detail}.")


def _knee(r: dict, curve: HitCurve, block_gib: float) -> str:
    if curve.distance.size == 0:
        return "No prompt block is ever reused in this trace: cache tiers cannot add hits."
    total = curve.distance[-1] + 1
    knee = knee_capacity(curve, int(total))
    knee_gib = knee * block_gib
    cache = r["hbm_kv_gib"] + r["dram_gib"] + r["ssd_gib"]
    where = "past" if cache >= knee_gib else "short of"
    each = " per replica" if r["replicas"] > 1 else ""
    return (f"Knee of the LRU hit-ratio curve at {knee_gib:,.0f} GiB{each} "
            f"(hit ratio {float(curve.hit_ratio(knee)):.1%}); the chosen {cache:,.0f} GiB of "
            f"cache{each} is {where} it and serves {r['hit_ratio']:.1%} of prompt blocks "
            f"(HBM {r['hit_ratio_hbm']:.1%}, DRAM {r['hit_ratio_dram']:.1%}, "
            f"SSD {r['hit_ratio_ssd']:.1%}).")


def _binding(r: dict) -> str:
    name = r["binding"]
    busiest = " on the busiest replica" if r["replicas"] > 1 else ""
    return (f"Binding resource{busiest}: {BINDING_LABELS[name]} at {r['util_' + name]:.0%} "
            f"utilization (GPU {r['util_gpu']:.0%}, H2D {r['util_h2d']:.0%}, SSD reads "
            f"{r['util_ssd_read']:.0%}); mean load stall {r['load_stall_mean_ms']:.1f} ms.")


def _policy(df: pl.DataFrame, best: dict) -> str:
    same = df.filter((pl.col("profile") == best["profile"])
                     & (pl.col("replicas") == best["replicas"])
                     & (pl.col("hbm_kv_gib") == best["hbm_kv_gib"])
                     & (pl.col("dram_gib") == best["dram_gib"])
                     & (pl.col("ssd_gib") == best["ssd_gib"])
                     & (pl.col("inclusive") == best["inclusive"])
                     & (pl.col("eviction") != best["eviction"]))
    if same.height == 0:
        return ""
    worst = same.sort("hit_ratio").row(0, named=True)
    gain = best["hit_ratio"] - worst["hit_ratio"]
    if abs(gain) < 0.01:
        return (f"Eviction policy hardly mattered at these sizes ({best['eviction']} vs "
                f"{worst['eviction']}: {abs(gain):.1%} apart in hit ratio).")
    return (f"Policy that mattered: {best['eviction']} serves {gain:+.1%} more prompt blocks "
            f"than {worst['eviction']} at the same sizes.")


def _twice(r: dict) -> str:
    if r["feasible_2x"]:
        return (f"At 2x the load it still meets the SLO: TTFT {r['ttft_pq_ms_2x']:,.0f} ms at "
                f"the SLO percentile, binding {BINDING_LABELS[r['binding_2x']]}.")
    return (f"At 2x the load it would not: {BINDING_LABELS[r['binding_2x']]} saturates or TTFT "
            f"exceeds the target (this configuration sustains about "
            f"{r['max_rate_rps']:.2f} req/s).")


def _what_would(r: dict, rate_rps: float, max_replicas: int) -> str:
    """What would make the best infeasible candidate meet the SLO, in words."""
    n, frac = r["replicas"], r["max_rate_rps"] / rate_rps if rate_rps else 0.0
    head = (f"Nothing meets the SLO at {rate_rps:.2f} req/s with up to {_count(max_replicas)}. "
            f"The best candidate ({_count(n)}) ")
    if frac < 1.0:
        need = int(np.ceil(n / max(frac, 1e-9)))
        return (head + f"sustains about {r['max_rate_rps']:.2f} req/s ({frac:.0%} of the "
                f"load): about {_count(need)} would carry it (--replicas {need}), or plan at "
                f"--load-scale {frac:.2f}; its first broken rule: {r['infeasible_reason']}.")
    return (head + f"carries the load (up to {r['max_rate_rps']:.2f} req/s) but breaks "
            f"'{r['infeasible_reason']}': more replicas or larger cache tiers shorten prefill "
            "queues; otherwise relax the SLO.")


def _count(n: int) -> str:
    return f"{n} replica{'s' if n != 1 else ''}"
