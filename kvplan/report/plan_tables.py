"""Human-readable tables and sentences of a plan (console and HTML); Parquet keeps the raw columns.

Short headers, sizes per replica in GiB, money in $ per hour for all replicas, percentages for
hit ratios, yes/no for verdicts, and "saturated" where a queue grows without bound (an
infinite TTFT in the Parquet files). Every table lists candidates in the decided order, the
recommendation first, and says in ``outcome`` why each other one lost; ``ok`` is the verdict
that decided (the simulation's where a candidate was verified)::

    #    rep  HBM  DRAM  SSD  evict  $/h    hit    TTFT p90 ms  TTFT p90 ms  ...  ok         outcome
                                                   screen       sim
    1845   1   31    78  630  arc    6.410  49.0%  5,154        4,385        ...  yes (sim)  recommended
"""

from __future__ import annotations

import math
from collections.abc import Callable

import polars as pl

from kvplan.plan.screen import Slo

SHORT_BINDING = {"gpu": "GPU", "h2d": "H2D", "d2h": "D2H", "ssd_read": "SSD read",
                 "ssd_write": "SSD write"}
Column = tuple[str, "str | Callable[[dict], object]", Callable[[object], str]]
"""(header, source column or a function of the row, formatter)."""


def gib(v) -> str:
    """Example: 2500.0 -> '2,500'; 0.31 -> '0.31'."""
    return "-" if v is None else f"{v:,g}"


def usd(v) -> str:
    return "-" if v is None else f"{v:,.3f}"


def pct(v) -> str:
    return "-" if v is None or v != v else f"{v:.1%}"


def ms(v) -> str:
    """Milliseconds; an infinite or missing TTFT is a saturated queue."""
    if v is None or v != v:
        return "-"
    return "saturated" if math.isinf(v) else f"{v:,.0f}"


def rate(v) -> str:
    return "-" if v is None else ("unbounded" if math.isinf(v) else f"{v:,.2f}")


def yes(v) -> str:
    return "-" if v is None else ("yes" if v else "no")


def _text(v) -> str:
    return "-" if v is None else str(v)


NARROW_DROP = ("binding", "max req/s", "load", "stall ms\nscreen", "stall ms\nsim", "tiers",
               "load\nsim", "hit\nscreen", "hit\nsim", "done", "hit")
"""Headers a narrow terminal leaves out, first to last, until a table fits."""
WRAPPING = ("outcome", "sim stop")
"""Headers of prose columns: their cells wrap between words instead of widening the table."""


def top_columns(df: pl.DataFrame, slo: Slo) -> list[Column]:
    """Columns of the candidates table; profile and tier hierarchy only where rows differ."""
    cols: list[Column] = [("#", "candidate_id", _text)]
    if df["profile"].n_unique() > 1:
        cols.append(("profile", "profile", _text))
    if df["tp"].n_unique() > 1:
        cols.append(("tp", "tp", _text))
    cols += [("rep", "replicas", _text), ("HBM", "hbm_kv_gib", gib), ("DRAM", "dram_gib", gib),
             ("SSD", "ssd_gib", gib), ("evict", "eviction", _text)]
    if df["inclusive"].n_unique() > 1:
        cols.append(("tiers", "inclusive", lambda v: "incl" if v else "excl"))
    p = f"p{slo.percentile:g}"
    sim = [(f"TTFT {p} ms\nsim", "sim_ttft_pq_ms", ms)] if "sim_ttft_pq_ms" in df.columns \
        else []
    return cols + [("$/h", "usd_per_h", usd), ("hit", "hit_ratio", pct),
                   (f"TTFT {p} ms\nscreen" if sim else f"TTFT {p} ms", "ttft_pq_ms", ms), *sim,
                   ("max req/s", "max_rate_rps", rate),
                   ("binding", "binding", lambda v: SHORT_BINDING.get(v, _text(v))),
                   ("load", "load_state", _text), ("ok", ok_words, _text),
                   ("outcome", "outcome", _text)]


def verified_columns(slo: Slo) -> list[Column]:
    """Columns of the verified table: the screen's figure beside the simulator's."""
    p = f"p{slo.percentile:g}"
    return [("#", "candidate_id", _text), ("rep", "replicas", _text),
            (f"TTFT {p} ms\nscreen", "ttft_pq_ms", ms), (f"TTFT {p} ms\nsim", "sim_ttft_pq_ms", ms),
            ("hit\nscreen", "hit_ratio", pct), ("hit\nsim", "sim_hit_ratio", pct),
            ("stall ms\nscreen", "load_stall_mean_ms", _ms1),
            ("stall ms\nsim", "sim_load_stall_mean_ms", _ms1),
            ("done", "sim_finished_frac", pct), ("load\nsim", "sim_load_state", _text),
            ("ok (sim)", "sim_feasible", yes), ("outcome", "outcome", _text)]


def verified_table_columns(df: pl.DataFrame, slo: Slo) -> list[Column]:
    """verified_columns, plus the simulator's stop reason when a run did not simply finish."""
    cols = verified_columns(slo)
    if df.height and (df["sim_stop_reason"].fill_null("") != "done").any():
        cols.append(("sim stop", "sim_stop_reason", _text))
    return cols


def _ms1(v) -> str:
    return "-" if v is None or v != v else f"{v:,.1f}"


def with_sim_hit(df: pl.DataFrame) -> pl.DataFrame:
    """Add sim_hit_ratio (all tiers) to a verified table."""
    if "sim_hit_ratio_hbm" not in df.columns:
        return df
    return df.with_columns((pl.col("sim_hit_ratio_hbm") + pl.col("sim_hit_ratio_dram")
                            + pl.col("sim_hit_ratio_ssd")).alias("sim_hit_ratio"))


def cells(df: pl.DataFrame, cols: list[Column]) -> list[list[str]]:
    """Formatted rows (strings) of ``df`` under ``cols``."""
    return [[fmt(src(r) if callable(src) else r.get(src)) for _, src, fmt in cols]
            for r in df.iter_rows(named=True)]


def ok_words(r: dict) -> str:
    """The verdict that decided: 'yes (sim)' / 'no (sim)' where simulated, else the
    screen's 'yes' / 'no'."""
    if r.get("verified"):
        return "yes (sim)" if r.get("sim_feasible") else "no (sim)"
    return yes(r.get("feasible"))


def slo_words(slo: Slo) -> str:
    """Example: 'TTFT p90 <= 5,000 ms'."""
    parts = []
    if slo.ttft_ms is not None:
        parts.append(f"TTFT p{slo.percentile:g} <= {slo.ttft_ms:,g} ms")
    if slo.tpot_ms is not None:
        parts.append(f"mean TPOT <= {slo.tpot_ms:,g} ms")
    if slo.min_rate_rps is not None:
        parts.append(f">= {slo.min_rate_rps:,g} req/s")
    return ", ".join(parts) or "no SLO"


def config_words(r: dict) -> str:
    """Example: '2 replicas of h100-sxm (tp 1), each HBM KV 27 GiB, DRAM 78 GiB, SSD 2,500 GiB,
    eviction lru, inclusive tiers; $6.753/h in all'."""
    n = r["replicas"]
    who = f"{n} replica{'s' if n > 1 else ''} of {r['profile']} (tp {r['tp']})"
    each = "each" if n > 1 else "with"
    return (f"{who}, {each} HBM KV {gib(r['hbm_kv_gib'])} GiB, DRAM {gib(r['dram_gib'])} GiB, "
            f"SSD {gib(r['ssd_gib'])} GiB, eviction {r['eviction']}, "
            f"{'inclusive' if r['inclusive'] else 'exclusive'} tiers; ${usd(r['usd_per_h'])}/h"
            + (" in all" if n > 1 else ""))


def load_words(best: dict, sim: dict | None) -> str:
    """The saturation verdict of the chosen candidate: simulated where verified, and the
    screen's. Example: 'Load: strained in simulation (3.91 req/s offered, 3.91 served; no
    backlog growth; 482 preemptions); screen: ok (3.91 req/s offered, sustains up to 4.92).'"""
    screen = f"screen: {best['load_state']} ({best['load_reason']})"
    if sim is None or sim.get("sim_load_state") is None:
        return f"Load: {screen}."
    return (f"Load: {sim['sim_load_state']} in simulation ({sim['sim_load_reason']}); "
            f"{screen}.")
