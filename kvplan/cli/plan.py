"""`kvplan plan`: cheapest HBM / DRAM / SSD sizes and policy meeting an SLO (docs/plan.md)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from kvplan.atomic import check_output_dir
from kvplan.bounds import check_values
from kvplan.cli.checks import choose, named
from kvplan.cli.options import (
    HBM_KV_BLOCKS_HELP,
    HBM_KV_TOKENS_HELP,
    ArrivalsOpt,
    JsonOpt,
    OutDirOpt,
    RayAddressOpt,
    RayOpt,
    SeedOpt,
    TraceOpt,
    check_arrivals,
    check_hbm_alternatives,
)
from kvplan.cli.output import console, err_console, print_json
from kvplan.engines import FREE
from kvplan.engines.base import disk_dir_problem
from kvplan.errors import KvplanError
from kvplan.hardware.prices import PriceTable, load_prices
from kvplan.hardware.profile import load_profile
from kvplan.model.kv import kv_bytes_per_token
from kvplan.model.spec import load_model
from kvplan.plan.costing import OBJECTIVES
from kvplan.plan.executor import LOCAL_CLUSTER
from kvplan.plan.planner import PlanResult, contexts, run_plan
from kvplan.plan.routing import ROUTING_RULE
from kvplan.plan.space import DEFAULT_EVICTIONS, deployable
from kvplan.plan.spec import BOUNDS, ENGINE_NAMES, PlanSpec, load_spec, spec_from_dict
from kvplan.plan.stages import StageClock, StageFigures, with_workers
from kvplan.plan.verify import verification_pool
from kvplan.report import plan_tables as tables
from kvplan.report.plan_files import summary_dict, verified_table
from kvplan.report.plan_files import write_plan as write_files
from kvplan.sim.build import hbm_kv_gib_of
from kvplan.sim.policies import eviction_policy
from kvplan.trace import detect_format, load_workload

_D = PlanSpec()
"""Defaults shown in the help, taken from the spec itself so they cannot drift."""
_GRID = ("repeat the flag for several; default: from the trace's KV footprint, see "
         "docs/plan.md")
PLAN_FLAGS = {
    "--ttft-ms": "slo.ttft_ms", "--tpot-ms": "slo.tpot_ms", "--percentile": "slo.percentile",
    "--min-rate": "slo.min_rate_rps", "--load-scale": "load_scale",
    "--replicas": "space.replicas", "--tp": "space.tp", "--ep": "space.ep",
    "--hbm-kv-gib": "space.hbm_kv_gib", "--dram-gib": "space.dram_gib",
    "--ssd-gib": "space.ssd_gib", "--verify-top": "verify_top", "--jobs": "jobs",
    "--verify-wall-s": "verify_wall_s", "--verify-window": "verify_window_s",
    "--exact-max-accesses": "exact_max_accesses", "--sample-rate": "sample_rate",
    "--seed": "seed"}
"""Numeric flag -> the PlanSpec field it sets (its bound: kvplan.plan.spec.BOUNDS)."""


def plan(
    trace: TraceOpt = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help=f"Model preset or config.json (default {_D.model}).")] = None,
    profile: Annotated[list[str] | None, typer.Option(
        "--profile", "-p", metavar="<name>", help="Candidate hardware profile, a name or a "
        f"TOML path (repeat the flag for several; default {', '.join(_D.profiles)}).")] = None,
    spec_file: Annotated[Path | None, typer.Option("--spec", help="plan.toml with every "
                                                   "setting; flags override it.")] = None,
    prices: Annotated[Path | None, typer.Option(help="Price table TOML (default: bundled).")
                      ] = None,
    ttft_ms: Annotated[float | None, typer.Option(
        help=f"TTFT target in ms at --percentile (default {_D.slo.ttft_ms:,g}).")] = None,
    tpot_ms: Annotated[float | None, typer.Option(
        help="Mean TPOT target in ms (default: none).")] = None,
    percentile: Annotated[float | None, typer.Option(
        help=f"Percentile of the TTFT target, in (0, 100] (default {_D.slo.percentile:g}).")
    ] = None,
    min_rate: Annotated[float | None, typer.Option(
        help="Minimum sustainable requests/s of the deployment (default: none).")] = None,
    objective: Annotated[str | None, typer.Option(
        help=f"usd_per_h, usd_per_mtok or goodput_per_usd (default {_D.objective}).")] = None,
    load_scale: Annotated[float | None, typer.Option(
        help=f"Arrival-rate multiplier, > 0 (default {_D.load_scale:g}).")] = None,
    replicas: Annotated[list[int] | None, typer.Option(
        "--replicas", "--dp", metavar="<int>",
        help="Replica count to search (repeat the flag for several; default 1-4, at most the "
        "node's GPUs / tp).")] = None,
    tp: Annotated[list[int] | None, typer.Option(
        "--tp", metavar="<int>", help="GPUs per replica to search (repeat the flag for "
        "several; default: the fewest that hold the weights, and twice that).")] = None,
    ep: Annotated[int | None, typer.Option(
        "--ep", help="MoE: spread the experts over each replica's GPUs (searches tp = ep "
        "only; 1 = off).")] = None,
    hbm_kv_gib: Annotated[list[float] | None, typer.Option(
        metavar="<GiB>", help="HBM given to KV per replica, > 0 (" + _GRID + ": 25, 50, 75 "
        "and 100 % of what the GPU leaves after weights).")] = None,
    hbm_kv_blocks: Annotated[list[int] | None, typer.Option(
        "--hbm-kv-blocks", min=1, help=HBM_KV_BLOCKS_HELP + " Repeat the flag.")] = None,
    hbm_kv_tokens: Annotated[list[int] | None, typer.Option(
        "--hbm-kv-tokens", min=1, help=HBM_KV_TOKENS_HELP + " Repeat the flag.")] = None,
    dram_gib: Annotated[list[float] | None, typer.Option(
        metavar="<GiB>", help="DRAM KV tier per replica, 0 = none (" + _GRID + ": 0 and "
        "1/32 .. 2 x the footprint, capped by the node's DRAM per GPU).")] = None,
    ssd_gib: Annotated[list[float] | None, typer.Option(
        metavar="<GiB>", help="SSD KV tier per replica, 0 = none (" + _GRID + ": 0 and "
        "1/4 .. 2 x the footprint, capped by the node's SSD per GPU).")] = None,
    eviction: Annotated[list[str] | None, typer.Option(
        metavar="<name>", help=f"Eviction policy (repeat the flag for several; default "
        f"{', '.join(DEFAULT_EVICTIONS)}). belady is an offline bound: shown beside the "
        "others, never recommended.")] = None,
    verify_top: Annotated[int | None, typer.Option(
        help=f"Best candidates re-run in the event simulator, plus up to "
        f"{_D.verify_near_misses} cheaper near-misses (default {_D.verify_top}; 0 = screen "
        "only).")] = None,
    jobs: Annotated[int | None, typer.Option(
        help=f"Parallel verification processes (default {_D.jobs}).")] = None,
    verify_wall_s: Annotated[float | None, typer.Option(
        help=f"Wall-time cap of one verification run in s (default {_D.verify_wall_s:g}).")
    ] = None,
    verify_window: Annotated[float | None, typer.Option(
        "--verify-window", help="Verify on the busiest this-many seconds of arrivals (after "
        "as long a warm-up) instead of the whole trace; stated in the result.")] = None,
    exact_max_accesses: Annotated[int | None, typer.Option(
        help="Longest block-access stream given exact stack distances; longer ones use "
             f"SHARDS sampling (default {_D.exact_max_accesses:,}).")] = None,
    sample_rate: Annotated[float | None, typer.Option(
        help="SHARDS sample rate in (0, 1] (default: about 2 M sampled accesses).")] = None,
    engine: Annotated[list[str] | None, typer.Option(
        "--engine", help="Engine to recommend for, from what it runs (repeat; default every "
        "engine: vllm, vllm+lmcache, sglang-hicache, dynamo-kvbm); none = free search over "
        "every policy.")] = None,
    disk_dir: Annotated[str | None, typer.Option(
        help=f"Directory of the SSD tier in the engine settings (default {_D.disk_dir}).")
    ] = None,
    arrivals: ArrivalsOpt = None,
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    profile_stages: Annotated[bool, typer.Option(
        "--profile-stages", help="Print wall time, CPU time and peak memory of each stage "
        "(also under \"stages\" in --json).")] = False,
    out: OutDirOpt = None,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Recommend replicas, KV tier sizes and policies that meet an SLO at least cost."""
    _check_flags(locals())
    check_hbm_alternatives(hbm_kv_gib, hbm_kv_blocks, hbm_kv_tokens)
    if arrivals is not None:
        check_arrivals(arrivals)
    spec = _resolve(spec_file, locals())
    price_table = _check_inputs(spec, out)
    address = ray_address or (LOCAL_CLUSTER if ray else None)
    clock = StageClock() if profile_stages else None
    with verification_pool(spec.jobs, spec.verify_top > 0, address) as pool:  # workers start
        if clock:
            clock("load")
        workload = load_workload(Path(spec.trace) if spec.trace else None)
        spec = _hbm_grid(spec, workload.block_size, hbm_kv_blocks, hbm_kv_tokens)
        result = _run(workload, spec, price_table, quiet=json_out, pool=pool, clock=clock)
    if clock:
        clock("report")
    if out is not None:
        write_files(result, out)
    stages = _stages(clock, result)
    if json_out:
        print_json(summary_dict(result) | (_profile_dict(stages, result) if clock else {}))
    else:
        _render(result, out)
        if clock:
            err_console.print(tables_stage(stages))


def _stages(clock: StageClock | None, result: PlanResult) -> list[StageFigures]:
    """The closed stages, with the verification workers' CPU and memory on "verify"."""
    if clock is None:
        return []
    stages = clock.close()
    w = result.workers
    return with_workers(stages, "verify", w.cpu_s, w.peak_rss_mib) if w and w.runs else stages


def _profile_dict(stages: list[StageFigures], result: PlanResult) -> dict:
    """--json --profile-stages: the stages, and what verification replayed in its workers."""
    w = result.workers
    return {"stages": [dataclasses.asdict(s) for s in stages],
            "verification": dataclasses.asdict(w) if w else None}


def tables_stage(stages: list[StageFigures]) -> Table:
    """Stage profile as a rich table (CPU and memory of this process; workers beside)."""
    t = Table(title="Stages (this process; verification workers beside)", title_justify="left",
              box=box.SIMPLE_HEAD, show_edge=False)
    for head in ("stage", "wall s", "CPU s", "peak RSS MiB", "workers CPU s",
                 "workers peak RSS MiB"):
        t.add_column(head, justify="left" if head == "stage" else "right")
    for s in stages:
        t.add_row(s.stage, f"{s.wall_s:,.1f}", f"{s.cpu_s:,.1f}", f"{s.peak_rss_mib:,.0f}",
                  "" if s.workers_cpu_s is None else f"{s.workers_cpu_s:,.1f}",
                  "" if s.workers_peak_rss_mib is None else f"{s.workers_peak_rss_mib:,.0f}")
    t.add_row("total", f"{sum(s.wall_s for s in stages):,.1f}",
              f"{sum(s.cpu_s for s in stages):,.1f}",
              f"{max((s.peak_rss_mib for s in stages), default=0):,.0f}", "", "")
    return t


def _check_flags(flags: dict) -> None:
    """Every numeric flag within its bound, names valid, no flag that cannot act; the
    messages name the flags (before anything is read)."""
    for flag, field in PLAN_FLAGS.items():
        value = flags[flag[2:].replace("-", "_")]
        check_values(flag, value if isinstance(value, list) else [value], BOUNDS[field])
    if flags["objective"] is not None:
        choose("--objective", flags["objective"], OBJECTIVES)
    for name in flags["eviction"] or ():
        named("--eviction", eviction_policy, name)
    engines = flags["engine"] or []
    for name in engines:
        choose("--engine", name, (*ENGINE_NAMES, FREE))
    if FREE in engines and len(engines) > 1:
        raise KvplanError(f"--engine {FREE} is the free search over every policy: give it alone")
    if flags["eviction"] and all(eviction_policy(n).is_oracle for n in flags["eviction"]):
        raise KvplanError(f"--eviction {' '.join(flags['eviction'])}: an offline bound (it "
                          "reads the trace's future), never a recommendation; add an online "
                          "policy beside it (--eviction lru --eviction belady) to see how "
                          "far each is from the bound")
    ep, tp = flags["ep"], flags["tp"]
    if ep is not None and ep > 1 and tp and set(tp) != {ep}:
        raise KvplanError(f"--ep {ep} searches tp = {ep} only; drop --tp {tp[0]}")
    hbm, dram, ssd = flags["hbm_kv_gib"], flags["dram_gib"], flags["ssd_gib"]
    if hbm and dram and ssd and not any(deployable(*c) for c in itertools.product(hbm, dram,
                                                                                  ssd)):
        raise KvplanError(f"--ssd-gib {max(ssd):g} needs a DRAM tier larger than the HBM KV pool "
                          f"(--dram-gib {max(dram):g} <= --hbm-kv-gib {min(hbm):g}): every "
                          "engine stages SSD blocks through host memory; raise --dram-gib or "
                          "add --ssd-gib 0")
    if flags["disk_dir"] is not None and (problem := disk_dir_problem(flags["disk_dir"])):
        raise KvplanError(f"--disk-dir: {problem}")
    if flags["verify_window"] is not None and flags["verify_top"] == 0:
        raise KvplanError("--verify-window has no effect with --verify-top 0: nothing is "
                          "verified")


def _check_inputs(spec: PlanSpec, out: Path | None) -> PriceTable:
    """Fail on a missing or unreadable input, or an unwritable --out, before the worker pool
    starts (a pool takes seconds to start and to stop); returns the price table."""
    if out is not None:
        check_output_dir(out)
    if spec.trace:
        detect_format(Path(spec.trace))
    load_model(spec.model)
    for name in spec.profiles:
        load_profile(name)
    contexts(spec, [])  # a layout no profile can hold (--tp 3, --ep on a dense model)
    return load_prices(spec.prices)


def _resolve(spec_file: Path | None, flags: dict) -> PlanSpec:
    """Defaults < the spec file < command-line flags."""
    base = load_spec(spec_file) if spec_file else PlanSpec()
    raw = dataclasses.asdict(base)
    raw["slo"] = {k: v for k, v in raw["slo"].items() if v is not None}
    simple = {"trace": str(flags["trace"]) if flags["trace"] else None, "model": flags["model"],
              "prices": str(flags["prices"]) if flags["prices"] else None,
              "objective": flags["objective"], "load_scale": flags["load_scale"],
              "verify_top": flags["verify_top"], "jobs": flags["jobs"],
              "verify_wall_s": flags["verify_wall_s"],
              "verify_window_s": flags["verify_window"],
              "exact_max_accesses": flags["exact_max_accesses"],
              "sample_rate": flags["sample_rate"], "disk_dir": flags["disk_dir"],
              "arrivals": flags["arrivals"]}
    raw |= {k: v for k, v in simple.items() if v is not None}
    raw["seed"] = flags["seed"]
    if flags["profile"]:
        raw["profiles"] = list(flags["profile"])
    slo = {"ttft_ms": flags["ttft_ms"], "tpot_ms": flags["tpot_ms"],
           "percentile": flags["percentile"], "min_rate_rps": flags["min_rate"]}
    raw["slo"] |= {k: v for k, v in slo.items() if v is not None}
    grids = {"replicas": flags["replicas"], "hbm_kv_gib": flags["hbm_kv_gib"],
             "dram_gib": flags["dram_gib"], "ssd_gib": flags["ssd_gib"],
             "evictions": flags["eviction"], "tp": flags["tp"]}
    raw["space"] = dict(raw["space"]) | {k: list(v) for k, v in grids.items() if v}
    if flags["ep"] is not None:
        raw["space"]["ep"] = flags["ep"]
    raw["profiles"] = list(raw["profiles"])
    raw["engines"] = list(flags["engine"] or raw["engines"])
    return spec_from_dict(raw, spec_file or "<command line>")


def _hbm_grid(spec: PlanSpec, block_size: int, blocks: list[int] | None,
              tokens: list[int] | None) -> PlanSpec:
    """--hbm-kv-blocks / --hbm-kv-tokens as the hbm_kv_gib grid (exact GiB of this model's
    KV at the workload's block size)."""
    if not blocks and not tokens:
        return spec
    kv = kv_bytes_per_token(load_model(spec.model), spec.kv_dtype)
    grid = ([hbm_kv_gib_of(b, None, block_size, kv) for b in blocks] if blocks else
            [hbm_kv_gib_of(None, t, block_size, kv) for t in tokens or []])
    return dataclasses.replace(spec, space=dict(spec.space) | {"hbm_kv_gib": grid})


def _run(workload, spec: PlanSpec, prices, quiet: bool, pool,
         clock: StageClock | None = None) -> PlanResult:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=quiet, transient=True) as bar:
        tasks: dict[str, int] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
            if clock:
                clock(stage, done, total)

        return run_plan(workload, spec, prices, tick, pool)


def _render(res: PlanResult, out: Path | None) -> None:
    rec, slo = res.recommendation, res.spec.slo
    b = rec.best
    verdict = "Recommendation" if rec.feasible else "Nothing meets the SLO; best infeasible"
    console.print(f"[bold]{verdict}[/bold] (decided by {summary_dict(res)['decided_by']}): "
                  f"{tables.config_words(b)}.")
    console.print(f"SLO {tables.slo_words(slo)} at {res.rate_rps:.2f} req/s: {_figures(res, b)}")
    console.print(tables.load_words(b, _sim_row(res, b)), highlight=False)
    console.print(f"Hit-ratio curves: {res.curve_method}.", highlight=False)
    if b["replicas"] > 1:
        console.print(f"Routing: {ROUTING_RULE}.")
    if rec.runner_up:
        r = rec.runner_up
        console.print(f"Runner-up: #{r['candidate_id']}, {tables.config_words(r)} "
                      f"(differs in {rec.runner_up_diff}).")
    for line in rec.reasons + ([rec.what_would] if rec.what_would else []) + res.notes:
        console.print(f" - {line}")
    top = res.candidates.head(10)
    console.print()
    console.print(_table("Top candidates, the recommendation first (sizes per replica in GiB, "
                         "$/h for all replicas; ok: the simulation's verdict where verified)",
                         top, tables.top_columns(top, slo)))
    ver = tables.with_sim_hit(verified_table(res))
    if ver.height:
        console.print()
        console.print(_table("Verified in the event simulator (screen vs simulation)", ver,
                             tables.verified_table_columns(ver, slo)))
    console.print()
    if res.engine_plans:
        console.print(_engine_table(res))
        by_text: dict[str, list[str]] = {}
        for p in res.engine_plans:
            if p.what_if:
                by_text.setdefault(p.what_if, []).append(p.engine)
        for text, names in by_text.items():
            who = "every engine" if len(names) == len(res.engine_plans) > 1 else ", ".join(names)
            console.print(f" - {who}: {text}", highlight=False, markup=False)
        console.print()
    _render_engines(res.engines, out)
    if out is not None:
        console.print(f"Wrote results to {out}/")


def _render_engines(engines: list, out: Path | None) -> None:
    """Each engine's command on one unwrapped line (pasteable even when piped), its config
    files, and every rule that fails."""
    where = f" (files in {out}/engines/)" if out is not None else " (-o writes launch scripts)"
    console.print(f"[bold]Engine settings[/bold], per replica{where}:", highlight=False)
    for e in engines:
        console.print(f"[bold]{e.label}[/bold]: "
                      + ("every rule holds" if e.ok else "[red]a rule is VIOLATED[/red]"),
                      highlight=False)
        console.print(e.command(), soft_wrap=True, highlight=False, markup=False)
        for f in e.files:
            console.print(f"{f.name}:", highlight=False, markup=False)
            console.print(f.text.rstrip("\n"), soft_wrap=True, highlight=False, markup=False)
        for c in e.checks:
            if not c.ok:
                console.print(f"   VIOLATED: {c.rule} ({c.detail})", highlight=False,
                              markup=False)
        for n in e.notes:
            console.print(f"   note: {n}", highlight=False, markup=False)


def _engine_table(res: PlanResult) -> Table:
    """Each engine's recommendation side by side: sizes per replica (GiB), eviction, cost, SLO
    figures and hit ratios (simulated where verified, else the screen's)."""
    p = f"p{res.spec.slo.percentile:g}"
    t = Table(title="Per engine, each from what it runs (replicas x HBM/DRAM/SSD GiB per "
              "replica; figures simulated where verified)", title_justify="left",
              box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for head in ("engine", "configuration", "$/h", f"TTFT {p}", "TPOT", "hit H/D/S", "SLO"):
        t.add_column(head, justify="left" if head in ("engine", "configuration", "SLO")
                     else "right", no_wrap=True)
    sim = {r["candidate_id"]: r for r in res.verified.iter_rows(named=True)} if \
        res.verified.height else {}
    for plan_ in res.engine_plans:
        b = plan_.best
        if b is None:
            t.add_row(plan_.engine, "runs nothing searched", *["n/a"] * 5)
            continue
        s = sim.get(b["candidate_id"])
        ttft = s["sim_ttft_pq_ms"] if s and s["sim_ttft_pq_ms"] is not None else b["ttft_pq_ms"]
        tpot = s["sim_tpot_ms"] if s and s["sim_tpot_ms"] is not None else b["tpot_ms"]
        hits = [s[f"sim_hit_ratio_{k}"] if s else b[f"hit_ratio_{k}"]
                for k in ("hbm", "dram", "ssd")]
        t.add_row(plan_.engine, f"{b['replicas']} x {b['hbm_kv_gib']:,.0f}/{b['dram_gib']:,.0f}/"
                  f"{b['ssd_gib']:,.0f} {b['eviction']}", f"{b['usd_per_h']:.3f}",
                  "saturated" if math.isinf(ttft) else tables.ms(ttft), tables.ms(tpot),
                  "/".join(f"{100 * h:.0f}" for h in hits) + "%",
                  "yes" if plan_.feasible else "no")
    return t


def _figures(res: PlanResult, b: dict) -> str:
    """The SLO figures of the chosen row: simulated where verified, else the screen's."""
    p = f"p{res.spec.slo.percentile:g}"
    if math.isinf(b["ttft_pq_ms"]):
        screen = (f"saturated, the queue grows without bound; sustains up to "
                  f"{tables.rate(b['max_rate_rps'])} req/s (screen)")
    else:
        screen = (f"TTFT {p} {tables.ms(b['ttft_pq_ms'])} ms, mean TPOT "
                  f"{tables.ms(b['tpot_ms'])} ms, sustains up to "
                  f"{tables.rate(b['max_rate_rps'])} req/s (screen)")
    s = _sim_row(res, b)
    if s is None:
        return screen + "."
    if s["sim_ttft_pq_ms"] is None:
        return f"simulation {s['sim_stop_reason']}; {screen}."
    return (f"TTFT {p} {tables.ms(s['sim_ttft_pq_ms'])} ms, mean TPOT "
            f"{tables.ms(s['sim_tpot_ms'])} ms, {tables.pct(s['sim_finished_frac'])} of requests "
            f"finished (simulated); {screen}.")


def _sim_row(res: PlanResult, b: dict) -> dict | None:
    """The simulated figures of candidate ``b`` (None when it was not verified)."""
    if res.verified.height == 0:
        return None
    sim = res.verified.filter(pl.col("candidate_id") == b["candidate_id"])
    return sim.row(0, named=True) if sim.height else None


def _table(title: str, df: pl.DataFrame, cols: list[tables.Column]) -> Table:
    """A compact rich table: short headers that wrap between words, cells that never wrap
    (but the prose of tables.WRAPPING columns, ``outcome`` and ``sim stop``, which wraps
    between words), numbers right-aligned; one space either side of a column where they fit.
    Where the terminal is too narrow for every column, tables.NARROW_DROP columns are left
    out (the title says which; the Parquet files keep them all)."""
    rows = tables.cells(df, cols)
    widths = [max([len(w) for w in head.split()] + [len(r[i]) for r in rows])
              for i, (head, _, _) in enumerate(cols)]
    need = [min(w, 16) if head in tables.WRAPPING else w
            for (head, _, _), w in zip(cols, widths, strict=True)]

    def fits(keep: list[int], gap: int) -> bool:
        return sum(need[i] + 2 * gap for i in keep) + len(keep) - 1 <= console.width

    keep = list(range(len(cols)))
    gap = 1 if fits(keep, 1) else 0
    hidden = []
    for head in tables.NARROW_DROP:
        if fits(keep, gap):
            break
        drop = [i for i in keep if cols[i][0] == head]
        keep = [i for i in keep if i not in drop]
        hidden += [head.replace("\n", " ") for _ in drop]
    if hidden:
        title += f" ({', '.join(hidden)} left out: narrow terminal)"
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
              padding=(0, gap))
    natural = [max([len(line) for line in cols[i][0].split("\n")] + [widths[i]]) for i in keep]
    tight = sum(w + 2 * gap for w in natural) + len(keep) - 1 > console.width
    for i in keep:
        head = cols[i][0]
        left = any(r[i][:1].isalpha() and r[i] not in ("saturated", "unbounded") for r in rows)
        t.add_column(head, justify="left" if left else "right", min_width=need[i],
                     max_width=need[i] if tight and head not in tables.WRAPPING else None)
    for r in rows:
        t.add_row(*(Text(r[i], no_wrap=cols[i][0] not in tables.WRAPPING) for i in keep))
    return t
