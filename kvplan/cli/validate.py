"""`kvplan validate`: replay a real engine run and report, metric by metric, how far kvplan is.

With no arguments: the bundled vLLM 0.19.0 run (Llama-3.1-8B on one RTX 4090) on the bundled
``rtx-4090`` datasheet profile (docs/validate.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kvplan.atomic import check_output_dir, check_output_file
from kvplan.bundled import bundled_dir
from kvplan.cli.options import JsonOpt, OutDirOpt, SeedOpt
from kvplan.cli.output import console, err_console, print_json
from kvplan.hardware.profile import profile_to_toml
from kvplan.validate.fit import MAX_EVALUATIONS, FitResult, fit_profile, split_index
from kvplan.validate.read import read_run
from kvplan.validate.run import EngineRun
from kvplan.validate.runner import (
    Validation,
    check_replayable,
    replay_workload,
    run_validation,
)
from kvplan.validate.settings import Overrides, ReplaySettings, resolve


def validate(
    run: Annotated[Path | None, typer.Argument(
        help="Run folder (meta.json + requests.jsonl), vLLM bench serve JSON, SGLang "
             "bench_serving JSONL or generic CSV (default: the bundled vLLM run).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Model preset or config.json (default: the run's model).")] = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", "-p", help="Hardware profile name or TOML (default: the bundled profile "
        "of the run's GPU).")] = None,
    tp: Annotated[int | None, typer.Option("--tp", min=1, help="Tensor parallel size.")] = None,
    dp: Annotated[int | None, typer.Option("--dp", min=1, help="Data parallel size.")] = None,
    ep: Annotated[int | None, typer.Option("--ep", min=1, help="Expert parallel size.")] = None,
    max_seqs: Annotated[int | None, typer.Option(
        "--max-seqs", min=1, help="Max running sequences (vLLM max_num_seqs).")] = None,
    max_batched_tokens: Annotated[int | None, typer.Option(
        "--max-batched-tokens", min=1, help="Token budget per step (vLLM "
        "max_num_batched_tokens).")] = None,
    block_size: Annotated[int | None, typer.Option(
        "--block-size", min=1, help="Tokens per KV block.")] = None,
    kv_pool_tokens: Annotated[int | None, typer.Option(
        "--kv-pool-tokens", min=1, help="KV pool of the replica in tokens (default: the run's, "
        "else derived as vLLM sizes it).")] = None,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", min=0.0, help="Verdict: largest |error| of the TTFT, TPOT and e2e "
        "means.")] = 0.10,
    fit: Annotated[bool, typer.Option(
        "--fit", help="Fit the profile's free constants to the first part of the run, score "
        "the rest, write the fitted profile.")] = False,
    fit_frac: Annotated[float, typer.Option(
        "--fit-frac", help="--fit: share of the requests (by arrival) fitted; the rest is "
        "held out.")] = 0.5,
    fit_out: Annotated[Path | None, typer.Option(
        "--fit-out", help="--fit: fitted profile TOML (default: <out or .>/<profile>-fit.toml).")
    ] = None,
    seed: SeedOpt = 0,
    out: OutDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a real engine run under its settings and compare every latency metric."""
    if out is not None:
        check_output_dir(out)
    if fit_out is not None:
        check_output_file(fit_out, "--fit-out", suffix=None)
    engine_run = read_run(run, seed=seed)
    flags = Overrides(model=model, profile=profile, tp=tp, dp=dp, ep=ep, max_seqs=max_seqs,
                      max_batched_tokens=max_batched_tokens, block_size=block_size,
                      kv_pool_tokens=kv_pool_tokens)
    settings = resolve(engine_run, flags)
    workload = replay_workload(engine_run, settings)
    check_replayable(engine_run, settings, workload)
    if fit:
        split_index(engine_run.requests.height, fit_frac)
    quiet = as_json or not sys.stderr.isatty()
    result = run_validation(engine_run, settings, workload=workload, progress=not quiet)
    fitted = _fit(engine_run, settings, fit_frac, quiet) if fit else None
    title = (f"kvplan validate: {_display(engine_run)} ({engine_run.engine}), "
             f"{settings.model} on {settings.profile}")
    written: list[str] = []
    if out is not None:
        from kvplan.report.validation_files import write_validation

        written = write_validation(out, result, fitted, title)
    fit_path = None
    if fitted is not None:
        from kvplan.atomic import write_text_atomic

        fit_path = fit_out or (out or Path(".")) / f"{fitted.profile.name}.toml"
        write_text_atomic(fit_path, profile_to_toml(fitted.profile))
    _print(result, fitted, title, tolerance, as_json, out, written, fit_path)


def _fit(run: EngineRun, settings: ReplaySettings, fit_frac: float, quiet: bool) -> FitResult:
    columns = (TextColumn("fitting {task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total} replays"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=quiet, transient=True) as bar:
        task = bar.add_task(settings.profile, total=MAX_EVALUATIONS)
        return fit_profile(run, settings, fit_frac,
                           on_eval=lambda n: bar.update(task, completed=n))


def _print(result: Validation, fitted: FitResult | None, title: str, tolerance: float,
           as_json: bool, out: Path | None, written: list[str], fit_path: Path | None) -> None:
    from kvplan.report import validation_tables as tables

    if as_json:
        doc = tables.validation_dict(result, tolerance, fitted)
        if fit_path is not None:
            doc["fit"]["written_to"] = str(fit_path)
        print_json(doc)
        return
    console.print(title, soft_wrap=True, markup=False, highlight=False)
    console.print(tables.validation_table(result, tolerance))
    for line in tables.summary_lines(result, tolerance):
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    console.print(tables.settings_table(result))
    for note in (result.run.clocks, *result.run.notes):
        console.print(f"note: {note}", soft_wrap=True, markup=False, highlight=False)
    if fitted is not None:
        for table in tables.fit_tables(fitted):
            console.print(table)
        console.print(f"wrote the fitted profile to {fit_path} (use it with --profile)",
                      soft_wrap=True, markup=False, highlight=False)
    if written:
        console.print(f"wrote {', '.join(written)} to {out}", soft_wrap=True, markup=False,
                      highlight=False)


def _display(run: EngineRun) -> str:
    """The run as the user knows it: its path, or ``bundled <name>`` for the bundled one."""
    try:
        return f"bundled {run.path.resolve().relative_to(bundled_dir('traces').resolve())}"
    except ValueError:
        return str(run.path)
