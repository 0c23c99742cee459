"""`kvplan calibrate`: measure this machine and write a calibrated hardware profile.

See docs/calibration.md for what each family measures and how it enters the profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kvplan.atomic import check_output_dir
from kvplan.cli.options import JsonOpt, OutDirOpt, SeedOpt
from kvplan.cli.output import console, err_console, print_json, rich_table, write_frame
from kvplan.errors import KvplanError


def _families(value: str | None) -> tuple[str, ...]:
    from kvplan.calibrate.run import FAMILIES

    if not value:
        return FAMILIES
    return tuple(f.strip() for f in value.split(",") if f.strip())


def _size(value: str) -> int:
    """'256MiB', '1GiB', '4096' -> bytes."""
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "b": 1}
    v = value.strip().lower()
    for suffix, mult in units.items():
        if v.endswith(suffix) and v[: -len(suffix)].strip().replace(".", "", 1).isdigit():
            return int(float(v[: -len(suffix)]) * mult)
    if v.isdigit():
        return int(v)
    raise KvplanError(f"--ssd-bytes: expected a size like 512MiB or 2GiB, got '{value}'")


def calibrate(
    model: Annotated[str, typer.Option("--model", "-m", help="Model whose layer and KV block "
                                       "sizes are measured (preset name or config.json).")]
    = "llama-3.1-8b",
    quick: Annotated[bool, typer.Option("--quick", help="Fewer sizes and repeats (< 2 min on "
                                        "an H100/H200); default: full (< 10 min).")] = False,
    only: Annotated[str | None, typer.Option("--only", help="Comma-separated families: links, "
                                             "hbm, kvcopy, overlap, compute, host, ssd.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of the calibrated profile "
                                             "(default: <base>-calibrated).")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Datasheet profile to start from and "
                                             "compare with (default: matched to the GPU).")] = None,
    max_gpu_mem_frac: Annotated[float, typer.Option("--max-gpu-mem-frac", help="Never allocate "
                                                    "more than this share of free GPU memory.")]
    = 0.8,
    ssd_path: Annotated[Path | None, typer.Option("--ssd-path", help="Folder on the SSD to test "
                                                  "(default: the output folder).")] = None,
    ssd_bytes: Annotated[str, typer.Option("--ssd-bytes", help="SSD scratch file size, e.g. "
                                           "256MiB (the file is always removed).")] = "1GiB",
    check: Annotated[Path | None, typer.Option("--check", help="Re-measure a few points and "
                                               "report this profile's prediction error.")] = None,
    rebuild: Annotated[Path | None, typer.Option("--rebuild", help="Rebuild the profile from a "
                                                 "run's raw samples.parquet (no GPU needed).")]
    = None,
    out: OutDirOpt = None,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Measure this machine (GPU, host link, DRAM, SSD) and write a calibrated hardware profile."""
    import sys

    from kvplan.calibrate.run import CalibrateConfig

    for flag, folder in (("--out", out), ("--ssd-path", ssd_path)):
        if folder is not None:
            check_output_dir(folder, flag)

    cfg = CalibrateConfig(
        name=name, base=base, model=model, mode="quick" if quick else "full",
        only=_families(only), max_gpu_mem_frac=max_gpu_mem_frac, ssd_path=ssd_path,
        ssd_bytes=_size(ssd_bytes), out_dir=out, seed=seed, command=" ".join(sys.argv),
    )
    if rebuild is not None:
        _rebuild(rebuild, cfg, json_out)
    elif check is not None:
        _check(cfg, str(check), json_out)
    else:
        _run(cfg, json_out)


def _rebuild(samples: Path, cfg, json_out: bool) -> None:
    from kvplan.calibrate.run import rebuild_calibration

    result = rebuild_calibration(samples, name=cfg.name, base=cfg.base, out_dir=cfg.out_dir)
    if json_out:
        print_json({"profile": str(result.profile_path), "fits": result.fits.rows(),
                    "measured": result.profile.provenance.get("measured", "")})
        return
    console.print(f"rebuilt from {samples} on base {result.base.name}: measured "
                  f"{result.profile.provenance.get('measured', 'none')}")
    console.print(f"profile: {result.profile_path}  (use it: --profile {result.profile_path})")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                    "{task.total} families"), TimeElapsedColumn(), console=err_console,
                    transient=True)


def _run(cfg, json_out: bool) -> None:
    from kvplan.calibrate.compare import comparison_rows
    from kvplan.calibrate.run import run_calibration
    from kvplan.model.spec import load_model

    say = err_console.print if json_out else console.print
    with _progress() as bar:
        task = bar.add_task("calibrating", total=len(cfg.only))
        result = run_calibration(
            cfg, say=say,
            status=lambda label: bar.update(task, description=label),
            family_done=lambda _: bar.advance(task),
        )
    rows = comparison_rows(result.summary, result.fits, result.base, load_model(cfg.model))
    write_frame(pl.DataFrame(rows, schema=_COMPARISON_SCHEMA), result.out_dir / "comparison.parquet")
    if json_out:
        print_json({"profile": str(result.profile_path), "comparison": rows,
                    "fits": result.fits.rows(), "notes": result.notes,
                    "seconds_by_family": result.seconds_by_family})
        return
    console.print(rich_table(f"Measured vs datasheet ({result.base.name})", rows))
    if result.fits.rows():
        console.print(rich_table("Fits (t = intercept + work / rate)", result.fits.rows()))
    for note in result.notes:
        console.print(f"note: {note}")
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds_by_family.items())
    console.print(f"time per family: {secs}")
    console.print(f"raw samples: {result.out_dir / 'samples.parquet'}")
    console.print(f"profile: {result.profile_path}  (use it: --profile {result.profile_path})")


_COMPARISON_SCHEMA = {"figure": pl.String, "unit": pl.String, "measured": pl.Float64,
                      "datasheet": pl.Float64, "ratio": pl.Float64}


def _check(cfg, profile: str, json_out: bool) -> None:
    from kvplan.calibrate.check import check_profile

    with err_console.status("re-measuring"):
        rows, per_family = check_profile(cfg, profile)
    if cfg.out_dir is not None:
        write_frame(pl.DataFrame(rows), cfg.out_dir / "check.parquet")
    if json_out:
        print_json({"points": rows, "families": per_family})
        return
    console.print(rich_table(f"Prediction error of {profile}", rows))
    console.print(rich_table("Per family", per_family))
