"""PNG plots of a plan (matplotlib, imported lazily: most commands never plot)."""

from __future__ import annotations

import io

import polars as pl


def have_matplotlib() -> bool:
    """True when the optional plotting dependency is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _fig():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(7, 4), dpi=100)


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def curve_png(curves: pl.DataFrame, best: dict) -> bytes:
    """LRU hit ratio vs per-replica cache capacity (one line per profile and replica count),
    with the chosen tier boundaries marked."""
    plt, fig, ax = _fig()
    for (profile, reps), d in curves.group_by("profile", "replicas", maintain_order=True):
        ax.plot(d["capacity_gib"], d["hit_ratio"], label=f"LRU, {profile} x{reps}")
    edges = [("HBM", best["hbm_kv_gib"]), ("+DRAM", best["hbm_kv_gib"] + best["dram_gib"]),
             ("+SSD", best["hbm_kv_gib"] + best["dram_gib"] + best["ssd_gib"])]
    for (name, x), size in zip(edges, (1.0, best["dram_gib"], best["ssd_gib"]), strict=True):
        if size <= 0:
            continue
        ax.axvline(x, linestyle="--", color="gray")
        ax.text(x, 0.02, name, rotation=90, va="bottom")
    ax.set_xlabel("cache capacity per replica (GiB of KV)")
    ax.set_ylabel("prompt-block hit ratio")
    ax.legend()
    return _png(plt, fig)


def pareto_png(cands: pl.DataFrame, front: pl.DataFrame, y: str, ylabel: str, best: dict,
               target: float | None = None, target_label: str = "",
               simulated: float | None = None, log_y: bool = False) -> bytes:
    """Every stable candidate as a dot, the Pareto frontier as a line, the SLO target as a
    dashed line (``target``) and the recommendation as a star (its simulated figure as a
    second star where verified); ``log_y`` for figures spanning orders of magnitude."""
    plt, fig, ax = _fig()
    d = cands.filter(pl.col(y).is_finite())
    if d.height == 0:
        ax.text(0.5, 0.5, "no candidate sustains the load: every one saturates (screen)",
                ha="center", va="center", transform=ax.transAxes)
    ax.scatter(d["usd_per_h"], d[y], s=8, alpha=0.4, label="candidates (screen)")
    ax.plot(front["usd_per_h"], front[y], "r.-", label="Pareto frontier (screen)")
    if target is not None:
        ax.axhline(target, linestyle="--", color="gray", label=target_label)
    name = f"recommended #{best['candidate_id']}"
    if best.get(y) is not None and float(best[y]) < float("inf"):
        ax.plot([best["usd_per_h"]], [best[y]], "*", color="green", markersize=14,
                label=f"{name} (screen)")
    if simulated is not None:
        ax.plot([best["usd_per_h"]], [simulated], "*", color="black", markersize=14,
                label=f"{name} (simulated)")
    if log_y:
        ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_thousands())
    ax.set_xlabel("$ per hour")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return _png(plt, fig)


def _thousands():
    """Tick labels with thousands separators, never in scientific notation."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 10 else f"{v:,.3g}")


def timeseries_png(ts: pl.DataFrame) -> bytes:
    """Three panels of the recommended run (replica 1): tier occupancy in blocks, link
    utilization (0..1) and running / waiting / parked requests, against simulated time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "replica" in ts.columns:
        ts = ts.filter(pl.col("replica") == 0)
    panels = [("KV blocks held", [c for c in ts.columns if c.endswith("_used_blocks")]),
              ("link utilization", [c for c in ts.columns if c.endswith("_util")]),
              ("requests", [c for c in ("running", "waiting", "parked") if c in ts.columns])]
    fig, axes = plt.subplots(3, 1, figsize=(7, 7), dpi=100, sharex=True)
    for ax, (ylabel, cols) in zip(axes, panels, strict=True):
        for col in cols:
            ax.plot(ts["t_s"], ts[col], label=col.removesuffix("_used_blocks").removesuffix("_util"))
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_title("recommended configuration, replica 1")
    axes[-1].set_xlabel("simulated time (s)")
    return _png(plt, fig)
