"""Ranking, Pareto frontiers and the recommendation with its reasons in plain words."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.plan.curves import HitCurve
from kvplan.plan.screen import BINDING_LABELS, Slo

ASCENDING = {"usd_per_h": True, "usd_per_mtok": True, "goodput_per_usd": False}


def rank(df: pl.DataFrame, objective: str) -> pl.DataFrame:
    """Feasible rows by the objective (ties: TTFT, id); then infeasible ones, closest first
    (fits in HBM, stable, lowest TTFT, highest sustainable rate, cheapest); offline bounds
    (``bound``: an oracle eviction policy) last, ranked the same way among themselves: a bound
    is never a recommendation."""
    asc = ASCENDING[objective]
    out = []
    for bound in (False, True):
        part = df.filter(pl.col("bound") == bound) if "bound" in df.columns else df
        ok = part.filter(pl.col("feasible")).sort([objective, "ttft_pq_ms", "candidate_id"],
                                                   descending=[not asc, False, False])
        bad = part.filter(~pl.col("feasible")).sort(
            ["fits_hbm", "stable", pl.col("ttft_pq_ms").round_sig_figs(2),
             pl.col("max_rate_rps").round_sig_figs(3), "usd_per_h", "candidate_id"],
            descending=[True, True, False, True, False, False])
        out += [ok, bad]
        if "bound" not in df.columns:
            break
    return pl.concat(out)


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
    Offline bounds (``bound`` rows) are never chosen; the plan refuses a space of bounds only.
    """
    rows = _online(ranked).to_dicts()
    best = rows[0]
    runner = next((r for r in rows[1:] if _choice(r) != _choice(best)),
                  next((r for r in rows[1:] if r["inclusive"] != best["inclusive"]), None))
    feasible = bool(best[decided])
    reasons = [_replicas(ranked, best, max_replicas, feasible), _knee(best, curve, block_gib),
               _binding(best), _policy(ranked, best), _bound_gap(ranked, best), _twice(best)]
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
    fewer = _online(df).filter((pl.col("profile") == best["profile"])
                               & (pl.col("replicas") < n))
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


def _same_sizes(df: pl.DataFrame, best: dict) -> pl.DataFrame:
    """Rows of ``df`` at the best row's profile, replicas, tier sizes and hierarchy, with
    another eviction policy."""
    return df.filter((pl.col("profile") == best["profile"])
                     & (pl.col("replicas") == best["replicas"])
                     & (pl.col("hbm_kv_gib") == best["hbm_kv_gib"])
                     & (pl.col("dram_gib") == best["dram_gib"])
                     & (pl.col("ssd_gib") == best["ssd_gib"])
                     & (pl.col("inclusive") == best["inclusive"])
                     & (pl.col("eviction") != best["eviction"]))


def _online(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(~pl.col("bound")) if "bound" in df.columns else df


def _bound_gap(df: pl.DataFrame, best: dict) -> str:
    """What an offline bound at the same sizes says is left to gain by a better policy."""
    if "bound" not in df.columns:
        return ""
    bounds = _same_sizes(df.filter(pl.col("bound")), best)
    if bounds.height == 0:
        return ""
    b = bounds.sort("hit_ratio", descending=True).row(0, named=True)
    return (f"Offline bound: {b['eviction']} (it reads the future; not a policy to run) "
            f"serves {b['hit_ratio']:.1%} of prompt blocks at the same sizes, "
            f"{best['eviction']} {best['hit_ratio']:.1%}: a better eviction policy could add "
            f"at most {max(b['hit_ratio'] - best['hit_ratio'], 0.0):.1%}.")


def _policy(df: pl.DataFrame, best: dict) -> str:
    same = _same_sizes(_online(df), best)
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


def outcomes(df: pl.DataFrame, rec: Recommendation, objective: str, slo: Slo) -> list[str]:
    """Per row of ``df`` (the decided order, with ``verified``): why it is or is not the
    recommendation, in a few words.

    Examples: 'recommended'; 'runner-up: +0.004 $/h'; 'fails in simulation: TTFT p90 7,089 ms
    > 5,000 ms'; 'screen: saturated: GPU'; 'offline bound (belady): never recommended'.
    """
    best_id = rec.best["candidate_id"]
    runner_id = rec.runner_up["candidate_id"] if rec.runner_up else None
    out = []
    for r in df.iter_rows(named=True):
        if r["candidate_id"] == best_id:
            out.append("recommended" if rec.feasible else "best infeasible: nothing meets the "
                       "SLO")
            continue
        why = _why_not(r, rec.best, objective, slo)
        out.append(f"runner-up: {why}" if r["candidate_id"] == runner_id else why)
    return out


def _why_not(r: dict, best: dict, objective: str, slo: Slo) -> str:
    if r.get("bound"):
        return f"offline bound ({r['eviction']} reads the future): never recommended"
    if r.get("verified"):
        if not r.get("sim_feasible"):
            return f"fails in simulation: {_sim_rule(r, slo)}"
    elif not r["feasible"]:
        return f"screen: {_screen_rule(r, slo)}"
    return _costlier(r, best, objective)


def _screen_rule(r: dict, slo: Slo) -> str:
    """The first rule the screen says the row breaks, with its figure."""
    reason = r["infeasible_reason"]
    if reason.startswith("TTFT") and slo.ttft_ms is not None:
        return f"TTFT p{slo.percentile:g} {r['ttft_pq_ms']:,.0f} ms > {slo.ttft_ms:,g} ms"
    if reason.startswith("TPOT") and slo.tpot_ms is not None:
        return f"mean TPOT {r['tpot_ms']:,.1f} ms > {slo.tpot_ms:,g} ms"
    if reason.startswith("max rate") and slo.min_rate_rps is not None:
        return f"sustains {r['max_rate_rps']:,.2f} req/s < {slo.min_rate_rps:,g}"
    return reason


def _sim_rule(r: dict, slo: Slo) -> str:
    """The first rule the simulation says the row breaks, with its figure."""
    done = r.get("sim_finished_frac")
    if done is None or done < 1.0:
        return (f"{(done or 0.0):.1%} of requests finished "
                f"({r.get('sim_stop_reason') or 'not run'})")
    ttft, tpot = r.get("sim_ttft_pq_ms"), r.get("sim_tpot_ms")
    if slo.ttft_ms is not None and ttft is not None and ttft > slo.ttft_ms:
        return f"TTFT p{slo.percentile:g} {ttft:,.0f} ms > {slo.ttft_ms:,g} ms"
    if slo.tpot_ms is not None and tpot is not None and tpot > slo.tpot_ms:
        return f"mean TPOT {tpot:,.1f} ms > {slo.tpot_ms:,g} ms"
    return "misses the SLO"


_OBJECTIVE_UNITS = {"usd_per_h": ("$/h", 3), "usd_per_mtok": ("$/Mtok", 3),
                    "goodput_per_usd": ("goodput per $", 0)}


def _costlier(r: dict, best: dict, objective: str) -> str:
    """Meets the SLO, ranks lower: how much worse on the objective, else the tie-break."""
    unit, digits = _OBJECTIVE_UNITS[objective]
    d = r[objective] - best[objective]
    if abs(d) >= 0.5 * 10 ** -digits:
        return f"{d:+,.{digits}f} {unit}"
    key = "sim_ttft_pq_ms" if r.get("verified") and best.get("verified") else "ttft_pq_ms"
    a, b = r.get(key), best.get(key)
    if a is not None and b is not None and a > b:
        return f"same {unit}, higher TTFT ({a:,.0f} vs {b:,.0f} ms)"
    return f"same {unit} and TTFT, ranked after it"
