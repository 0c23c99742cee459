"""`kvplan plan`: cheapest HBM / DRAM / SSD sizes and policy meeting an SLO (docs/plan.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kvplan.cli.options import JsonOpt, OutDirOpt, SeedOpt, TraceOpt
from kvplan.cli.output import console, err_console, print_json, rich_table
from kvplan.hardware.prices import load_prices
from kvplan.plan.planner import PlanResult, run_plan
from kvplan.plan.spec import PlanSpec, load_spec, spec_from_dict
from kvplan.report.plan_files import TOP_COLUMNS, VERIFIED_COLUMNS, summary_dict, verified_table
from kvplan.report.plan_files import write_plan as write_files
from kvplan.trace import load_workload

Floats = Annotated[list[float] | None, typer.Option(help="Grid value (repeat the flag).")]


def plan(
    trace: TraceOpt = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model preset or "
                                              "config.json (default llama-3.1-8b).")] = None,
    profile: Annotated[list[str] | None, typer.Option(
        "--profile", "-p", help="Candidate hardware profile (repeat; default h100-sxm).")] = None,
    spec_file: Annotated[Path | None, typer.Option("--spec", help="plan.toml with every "
                                                   "setting; flags override it.")] = None,
    prices: Annotated[Path | None, typer.Option(help="Price table TOML (default: bundled).")
                      ] = None,
    ttft_ms: Annotated[float | None, typer.Option(help="TTFT target (ms) at --percentile.")
                       ] = None,
    tpot_ms: Annotated[float | None, typer.Option(help="Mean TPOT target (ms).")] = None,
    percentile: Annotated[float | None, typer.Option(help="TTFT percentile (default 99).")
                          ] = None,
    min_rate: Annotated[float | None, typer.Option(help="Minimum sustained requests/s.")] = None,
    objective: Annotated[str | None, typer.Option(
        help="usd_per_h | usd_per_mtok | goodput_per_usd (default usd_per_h).")] = None,
    load_scale: Annotated[float | None, typer.Option(help="Arrival-rate multiplier.")] = None,
    hbm_kv_gib: Floats = None,
    dram_gib: Floats = None,
    ssd_gib: Floats = None,
    eviction: Annotated[list[str] | None, typer.Option(help="Eviction policy (repeat).")
                        ] = None,
    verify_top: Annotated[int | None, typer.Option(help="Candidates verified in the event "
                                                   "simulator (default 5; 0 = screen only).")
                          ] = None,
    jobs: Annotated[int | None, typer.Option(help="Parallel verification processes.")] = None,
    verify_wall_s: Annotated[float | None, typer.Option(help="Wall cap of one verification.")
                             ] = None,
    out: OutDirOpt = None,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Recommend KV tier sizes and policies that meet an SLO at least cost."""
    spec = _resolve(spec_file, locals())
    workload = load_workload(Path(spec.trace) if spec.trace else None)
    price_table = load_prices(spec.prices)
    result = _run(workload, spec, price_table, quiet=json_out)
    if out is not None:
        write_files(result, out)
    if json_out:
        print_json(summary_dict(result))
    else:
        _render(result, out)


def _resolve(spec_file: Path | None, flags: dict) -> PlanSpec:
    """Defaults < the spec file < command-line flags."""
    base = load_spec(spec_file) if spec_file else PlanSpec()
    raw = dataclasses.asdict(base)
    raw["slo"] = {k: v for k, v in raw["slo"].items() if v is not None}
    simple = {"trace": str(flags["trace"]) if flags["trace"] else None, "model": flags["model"],
              "prices": str(flags["prices"]) if flags["prices"] else None,
              "objective": flags["objective"], "load_scale": flags["load_scale"],
              "verify_top": flags["verify_top"], "jobs": flags["jobs"],
              "verify_wall_s": flags["verify_wall_s"]}
    raw |= {k: v for k, v in simple.items() if v is not None}
    raw["seed"] = flags["seed"]
    if flags["profile"]:
        raw["profiles"] = list(flags["profile"])
    slo = {"ttft_ms": flags["ttft_ms"], "tpot_ms": flags["tpot_ms"],
           "percentile": flags["percentile"], "min_rate_rps": flags["min_rate"]}
    raw["slo"] |= {k: v for k, v in slo.items() if v is not None}
    grids = {"hbm_kv_gib": flags["hbm_kv_gib"], "dram_gib": flags["dram_gib"],
             "ssd_gib": flags["ssd_gib"], "evictions": flags["eviction"]}
    raw["space"] = dict(raw["space"]) | {k: list(v) for k, v in grids.items() if v}
    raw["profiles"] = list(raw["profiles"])
    return spec_from_dict(raw, spec_file or "<command line>")


def _run(workload, spec: PlanSpec, prices, quiet: bool) -> PlanResult:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=quiet, transient=True) as bar:
        tasks: dict[str, int] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return run_plan(workload, spec, prices, tick)


def _render(res: PlanResult, out: Path | None) -> None:
    rec = res.recommendation
    b = rec.best
    verdict = "Recommendation" if rec.feasible else "Nothing meets the SLO; best infeasible"
    console.print(f"[bold]{verdict}[/bold] ({summary_dict(res)['decided_by']}): {b['profile']}"
                  f" x{b['tp']}, HBM KV {b['hbm_kv_gib']:g} GiB, DRAM {b['dram_gib']:g} GiB, "
                  f"SSD {b['ssd_gib']:g} GiB, eviction {b['eviction']}, "
                  f"{'inclusive' if b['inclusive'] else 'exclusive'} - ${b['usd_per_h']:.3f}/h, "
                  f"TTFT p{res.spec.slo.percentile:g} {b['ttft_pq_ms']:,.0f} ms (analytic)")
    if rec.runner_up:
        r = rec.runner_up
        console.print(f"Runner-up: HBM KV {r['hbm_kv_gib']:g} / DRAM {r['dram_gib']:g} / SSD "
                      f"{r['ssd_gib']:g} GiB, {r['eviction']}, ${r['usd_per_h']:.3f}/h")
    for line in rec.reasons + ([rec.what_would] if rec.what_would else []) + res.notes:
        console.print(f" - {line}")
    console.print(rich_table("Top candidates (analytic screen)",
                             res.candidates.head(10).select(TOP_COLUMNS).to_dicts()))
    ver = verified_table(res)
    if ver.height:
        cols = [c for c in VERIFIED_COLUMNS if c in ver.columns]
        console.print(rich_table("Verified in the event simulator", ver.select(cols).to_dicts()))
    for e in res.engines:
        checks = "; ".join(f"{'ok' if c.ok else 'VIOLATED'}: {c.rule}" for c in e.checks)
        console.print(f"[bold]{e.engine}[/bold]: {e.command}\n   {checks}")
    if out is not None:
        console.print(f"Wrote results to {out}/")
