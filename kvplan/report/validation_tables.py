"""Console tables and the JSON document of ``kvplan validate`` (docs/validate.md)::

    metric            real       kvplan     error
    TTFT mean ms      65,457     78,160     +19.4% x
    ...
    TTFT per-request median |error|          18.5%
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rich import box
from rich.table import Table

from kvplan.validate.fit import FitResult
from kvplan.validate.metrics import HEADLINE, LATENCIES, Comparison
from kvplan.validate.runner import Validation

_LABELS = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "e2e"}


def metric_label(metric: str) -> str:
    """``ttft_p90_ms`` -> ``TTFT p90 ms``; ``throughput_rps`` -> ``throughput req/s``."""
    if metric == "makespan_s":
        return "makespan s"
    if metric == "throughput_rps":
        return "throughput req/s"
    name, stat, unit = metric.split("_")
    return f"{_LABELS[name]} {stat} {unit}"


def _num(v: float | None, metric: str = "") -> str:
    if v is None:
        return "n/a"
    return f"{v:,.2f}" if metric in ("throughput_rps", "makespan_s") or abs(v) < 100 \
        else f"{v:,.0f}"


def _err(e: float | None) -> str:
    return "n/a" if e is None else f"{e:+.1%}"


def validation_table(v: Validation, tolerance: float) -> Table:
    """Every metric real vs simulated and the per-request median |errors| (x: a headline
    metric outside ``tolerance``). The title, capacity and verdict lines go around it."""
    table = Table(box=box.SIMPLE_HEAD)
    for name, justify in (("metric", "left"), ("real", "right"), ("kvplan", "right"),
                          ("error", "right"), ("", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in v.comparison.metrics:
        flag = "x" if row.metric in HEADLINE and (row.error_frac is None
                                                   or abs(row.error_frac) > tolerance) else ""
        table.add_row(metric_label(row.metric), _num(row.real, row.metric),
                      _num(row.sim, row.metric), _err(row.error_frac), flag)
    pr = v.comparison.per_request
    for m in LATENCIES:
        value = getattr(pr, f"{m}_median_abs_error_frac")
        table.add_row(f"{_LABELS[m]} per-request median |error|", "", "",
                      "n/a" if value is None else f"{value:.1%}", "")
    return table


def summary_lines(v: Validation, tolerance: float) -> list[str]:
    """KV capacity and its source, requests replayed, unfinished ones, the verdict."""
    s, pr = v.settings, v.comparison.per_request
    lines = [f"KV pool: {s.kv_blocks:,} blocks x {s.block_size} tokens = "
             f"{s.kv_pool_tokens:,} tokens ({s.kv_gib:.2f} GiB), from "
             f"{s.sources['kv_pool_tokens']}",
             f"Requests: {v.run.requests.height:,} replayed ({v.run.failed:,} failed in the run "
             f"and left out); {pr.requests_compared:,} finished in the replay"]
    if pr.unfinished_in_sim:
        lines.append(f"warning: {pr.unfinished_in_sim:,} requests unfinished in the replay "
                     f"(stop: {v.stop_reason}); simulated figures cover the finished ones")
    lines.append(verdict_line(v.comparison, tolerance))
    return lines


def verdict_line(c: Comparison, tolerance: float) -> str:
    outside = c.outside(tolerance)
    if not outside:
        return f"Verdict: within {tolerance:.0%} (TTFT, TPOT and e2e means)"
    parts = ", ".join(f"{metric_label(m).removesuffix(' ms')} {_err(c.row(m).error_frac)}"
                      for m in outside)
    return f"Verdict: outside {tolerance:.0%}: {parts}"


def settings_table(v: Validation) -> Table:
    """Each replay setting, its value and where it came from."""
    s = v.settings
    table = Table(title="Replay settings", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("setting", "value", "from"):
        table.add_column(name)
    values = {"model": s.model, "profile": s.profile, "tp": s.tp, "dp": s.dp, "ep": s.ep,
              "max_seqs": s.max_seqs, "max_batched_tokens": s.max_batched_tokens,
              "block_size": s.block_size, "kv_dtype": s.kv_dtype,
              "prefix_caching": "on" if s.prefix_caching else "off",
              "kv_pool_tokens": f"{s.kv_pool_tokens:,}"}
    for key, value in values.items():
        table.add_row(key, str(value), s.sources.get(key, ""))
    for term in s.pool_terms:
        table.add_row(f"  {term.name}", f"{term.bytes:+,} B", term.source)
    return table


def fit_tables(f: FitResult) -> tuple[Table, Table]:
    """The fitted constants, and the fitted profile's errors on the fit and held-out parts."""
    params = Table(title=f"Fitted constants ({f.evaluations} replays)", title_justify="left",
                   box=box.SIMPLE_HEAD)
    for name in ("constant", "before", "after", ""):
        params.add_column(name, justify="left" if name in ("constant", "") else "right")
    for p in f.params:
        params.add_row(p.name, f"{p.before:.4g}", f"{p.after:.4g}",
                       "at a bound of its range" if p.at_bound else "")
    title = (f"Fitted profile: fit part (first {f.fit_requests:,} requests) vs held-out part "
             f"(last {f.held_out_requests:,}, arrivals from {f.split_arrival_s:.1f} s)")
    parts = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    parts.add_column("metric")
    for name in ("real", "kvplan", "error", "real", "kvplan", "error"):
        parts.add_column(name, justify="right")
    for a, b in zip(f.in_sample.metrics, f.held_out.metrics, strict=True):
        parts.add_row(metric_label(a.metric), _num(a.real, a.metric), _num(a.sim, a.metric),
                      _err(a.error_frac), _num(b.real, b.metric), _num(b.sim, b.metric),
                      _err(b.error_frac))
    return params, parts


def comparison_dict(c: Comparison) -> dict[str, Any]:
    return {"metrics": [dataclasses.asdict(r) for r in c.metrics],
            "per_request": dataclasses.asdict(c.per_request)}


def validation_dict(v: Validation, tolerance: float, fit: FitResult | None) -> dict[str, Any]:
    """The ``--json`` document: metrics, per_request, settings, run, verdict (and fit)."""
    run = v.run
    out: dict[str, Any] = {
        **comparison_dict(v.comparison),
        "settings": v.settings.as_dict(),
        "run": {"path": str(run.path), "format": run.source_format, "engine": run.engine,
                "requests": run.requests.height, "failed": run.failed, "clocks": run.clocks,
                "notes": list(run.notes), "stop_reason": v.stop_reason},
        "verdict": {"tolerance": tolerance, "within": not v.comparison.outside(tolerance),
                    "outside": v.comparison.outside(tolerance)},
    }
    if fit is not None:
        out["fit"] = {"profile": fit.profile.name, "evaluations": fit.evaluations,
                      "params": [dataclasses.asdict(p) for p in fit.params],
                      "fit_requests": fit.fit_requests,
                      "held_out_requests": fit.held_out_requests,
                      "split_arrival_s": fit.split_arrival_s,
                      "in_sample": comparison_dict(fit.in_sample),
                      "held_out": comparison_dict(fit.held_out)}
    return out
