"""Write a plan's results into a folder: Parquet tables, the spec, PNG plots and report.html.

Files (columns documented in docs/plan.md): candidates.parquet, pareto_ttft.parquet,
pareto_goodput.parquet, curves.parquet, verified.parquet, verified_requests.parquet,
timeseries.parquet, plan.toml (the resolved spec), plan.json (the recommendation), engines/
(launch script, env file and config files per engine, docs/engines.md), curves.png,
pareto_ttft.png, pareto_goodput.png, timeseries.png and a self-contained report.html.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import polars as pl

from kvplan.atomic import write_parquet_atomic, write_text_atomic
from kvplan.engines import EngineSettings
from kvplan.plan.engines import engine_plans_frame
from kvplan.plan.planner import PlanResult
from kvplan.plan.routing import ROUTING_RULE
from kvplan.plan.spec import spec_to_toml
from kvplan.report import html, plan_tables, plots
from kvplan.report.engine_files import checks_text, write_engine_files
from kvplan.report.plan_tables import slo_words


def summary_dict(res: PlanResult) -> dict:
    """The recommendation as plain JSON-able data."""
    rec = res.recommendation
    return {"feasible": rec.feasible, "decided_by": "event simulation" if res.verified.height
            else "analytic screen", "rate_rps": res.rate_rps, "replicas": rec.best["replicas"],
            "routing": ROUTING_RULE, "slo": slo_words(res.spec.slo), "best": _clean(rec.best),
            "sim": _clean(_sim_row(res)), "runner_up": _clean(rec.runner_up),
            "runner_up_differs_in": rec.runner_up_diff, "reasons": rec.reasons,
            "what_would": rec.what_would, "curve_method": res.curve_method, "notes": res.notes,
            "engines": [engine_dict(e) for e in res.engines],
            "engine_plans": [{"engine": p.engine, "label": p.label, "meets_slo": p.feasible,
                              "what_if": p.what_if, "best": _clean(p.best)}
                             for p in res.engine_plans]}


def engine_dict(e: EngineSettings) -> dict:
    """One engine's settings as plain JSON-able data."""
    return {"engine": e.engine, "label": e.label, "ok": e.ok, "settings": e.settings,
            "command": e.command(), "env": dict(e.env), "argv": list(e.argv),
            "files": {f.name: f.text for f in e.files},
            "checks": [dataclasses.asdict(c) for c in e.checks], "notes": list(e.notes)}


def _sim_row(res: PlanResult) -> dict | None:
    """The simulated figures of the chosen candidate (None when it was not verified)."""
    if res.verified.height == 0:
        return None
    rows = res.verified.filter(pl.col("candidate_id") == res.recommendation.best["candidate_id"])
    return rows.row(0, named=True) if rows.height else None


def _clean(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {k: (None if isinstance(v, float) and v != v or v in (float("inf"), float("-inf"))
                else v) for k, v in row.items()}


def write_plan(res: PlanResult, out: Path) -> list[Path]:
    """Write every output file atomically; returns the paths written."""
    meta = {"kvplan.plan": spec_to_toml(res.spec), "kvplan.curve_method": res.curve_method}
    tables = {"candidates": res.candidates, "pareto_ttft": res.pareto_ttft,
              "pareto_goodput": res.pareto_goodput, "curves": res.curves,
              "verified": verified_table(res), "verified_requests": res.verified_requests,
              "timeseries": res.timeseries, "engine_plans": engine_plans_frame(res.engine_plans)}
    written = []
    for name, df in tables.items():
        path = out / f"{name}.parquet"
        write_parquet_atomic(df.to_arrow(), path, meta)
        written.append(path)
    write_text_atomic(out / "plan.toml", spec_to_toml(res.spec))
    write_text_atomic(out / "plan.json", json.dumps(summary_dict(res), indent=2, default=str))
    images = _images(res)
    for name, png in images.items():
        with_suffix = out / f"{name}.png"
        _write_bytes(with_suffix, png)
        written.append(with_suffix)
    write_text_atomic(out / "report.html", _html(res, images))
    written += write_engine_files(res.engines, out / "engines")
    return written + [out / "plan.toml", out / "plan.json", out / "report.html"]


def verified_table(res: PlanResult):
    """Analytic figures beside the simulated ones for every verified candidate."""
    if res.verified.height == 0:
        return res.verified
    screen = [c for c in res.candidates.columns
              if c == "candidate_id" or c not in res.verified.columns]
    return res.candidates.select(screen).join(res.verified, on="candidate_id", how="inner",
                                              maintain_order="left")


def _write_bytes(path: Path, data: bytes) -> None:
    from kvplan.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _images(res: PlanResult) -> dict[str, bytes]:
    if not plots.have_matplotlib():
        return {}
    stable = res.candidates.filter(res.candidates["stable"])
    best, slo, sim = res.recommendation.best, res.spec.slo, _sim_row(res) or {}
    p = f"p{slo.percentile:g}"
    images = {"curves": plots.curve_png(res.curves, best),
              "pareto_ttft": plots.pareto_png(
                  stable, res.pareto_ttft, "ttft_pq_ms", f"TTFT {p} (ms)", best, slo.ttft_ms,
                  f"SLO: TTFT {p} <= {slo.ttft_ms:,g} ms" if slo.ttft_ms else "",
                  sim.get("sim_ttft_pq_ms"), log_y=True),
              "pareto_goodput": plots.pareto_png(
                  stable, res.pareto_goodput, "goodput_rps", "goodput (req/s)", best,
                  slo.min_rate_rps, f"SLO: >= {slo.min_rate_rps or 0:,g} req/s",
                  sim.get("sim_goodput_rps"))}
    if res.timeseries.height:
        images["timeseries"] = plots.timeseries_png(res.timeseries)
    return images


def _html(res: PlanResult, images: dict[str, bytes]) -> str:
    rec, slo = res.recommendation, res.spec.slo
    head = (f"{'Recommended' if rec.feasible else 'Best infeasible'}: "
            f"{plan_tables.config_words(rec.best)}")
    routing = [f"Routing: {ROUTING_RULE}."] if rec.best["replicas"] > 1 else []
    runner = [f"Runner-up: {plan_tables.config_words(rec.runner_up)} (differs in "
              f"{rec.runner_up_diff})."] if rec.runner_up else []
    summary = [head, f"SLO: {slo_words(slo)}", *routing, *runner, *rec.reasons] + (
        [rec.what_would] if rec.what_would else []) + res.notes
    top = res.candidates.head(20)
    ver = plan_tables.with_sim_hit(verified_table(res))
    front = _with_best(res.pareto_ttft, res.candidates)
    tables = {"Top candidates, the recommendation first (sizes per replica, GiB; $/h for all "
              "replicas; ok: the simulation's verdict where verified)":
              _formatted(top, plan_tables.top_columns(top, slo)),
              "Verified: analytic screen vs event simulation":
              _formatted(ver, plan_tables.verified_table_columns(ver, slo)),
              "Pareto frontier: cost vs screen TTFT (runnable online candidates; the "
              "recommendation added where it is not on it)":
              _formatted(front, plan_tables.top_columns(front, slo)) if front.height
              else ([], [])}
    settings = {e.label + " (per replica)": "\n\n".join(
        [e.command()] + [f"{f.name}:\n{f.text}" for f in e.files] + [checks_text(e)])
        for e in res.engines}
    return html.render("kvplan plan", summary, tables, images, settings)


def _with_best(front: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """The frontier rows with the recommendation added (by cost) when it is not one of them:
    the simulation, not the screen's TTFT, may have chosen it."""
    best = candidates.filter(pl.col("recommended"))
    if front.height == 0 or best.height == 0 or front["recommended"].any():
        return front
    return pl.concat([front, best.select(front.columns)]).sort("usd_per_h", "candidate_id")


def _formatted(df: pl.DataFrame, cols: list) -> tuple[list[str], list[list[str]]]:
    if df.height == 0:
        return [], []
    return [h for h, _, _ in cols], plan_tables.cells(df, cols)
