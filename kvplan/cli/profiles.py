"""`kvplan profiles list | show | validate | prices`: hardware profiles and the price table."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from kvplan.atomic import check_output_dir
from kvplan.cli.options import JsonOpt, OutDirOpt
from kvplan.cli.output import console, print_json, rich_table, write_frame
from kvplan.errors import KvplanError
from kvplan.hardware.prices import PRICE_FIELDS, load_prices
from kvplan.hardware.profile import (
    LINK_NAMES,
    SECTIONS,
    Grid,
    list_profiles,
    load_profile,
    write_profile,
)
from kvplan.hardware.validate import read_toml

app = typer.Typer(no_args_is_help=True, help="Hardware profiles (hwprofiles/*.toml) and prices.")
import_app = typer.Typer(no_args_is_help=True,
                         help="Build a profile from another tool's measured per-operation data.")
app.add_typer(import_app, name="import")

PROBE_SIZES = (4096, 65536, 1 << 20, 16 << 20, 256 << 20)
"""Transfer sizes at which `show` evaluates each link's bandwidth curve."""


@app.command("list")
def list_cmd(json_out: JsonOpt = False, out: OutDirOpt = None) -> None:
    """Bundled hardware profiles, one line each (--out: profiles.parquet)."""
    if out is not None:
        check_output_dir(out)
    rows = []
    for name in list_profiles():
        p = load_profile(name)
        rows.append({"profile": name, "kind": p.kind, "gpu": p.gpu.model, "gpus": p.gpu.count,
                     "hbm_gib": p.gpu.hbm_gib, "hbm_bw_gbps": p.gpu.hbm_bw_gbps,
                     "dram_gib": p.host.dram_gib, "h2d_gbps": p.host_link.h2d_achieved_gbps,
                     "ssd_gib": p.ssd.capacity_gib})
    if out is not None:
        write_frame(pl.DataFrame(rows), out / "profiles.parquet")
    if json_out:
        print_json(rows)
    else:
        console.print(rich_table("Hardware profiles", rows))


def _field_rows(profile) -> list[dict]:
    return [{"field": f"{section}.{key}", "value": value,
             "source": profile.sources.get(f"{section}.{key}", "")}
            for section in (*SECTIONS, "ops")
            for key, value in asdict(getattr(profile, section)).items()]


def _curve_rows(profile) -> list[dict]:
    """Each measured curve: its axes and measured ranges (predictions outside are flagged)."""
    rows = []
    for name, c in profile.curves.items():
        y = f", {len(c.y)} rows {c.y[0]:g}..{c.y[-1]:g}" if isinstance(c, Grid) else ""
        rows.append({"curve": name, "points": len(c.x) * (len(c.y) if isinstance(c, Grid) else 1),
                     "x_range": f"{c.x[0]:g}..{c.x[-1]:g}{y}"})
    return rows


def _link_rows(profile) -> list[dict]:
    rows = []
    for name in LINK_NAMES:
        link = profile.link(name)
        for n in PROBE_SIZES:
            rows.append({"link": name, "size_bytes": n, "bw_gbps": link.bandwidth_gbps(n),
                         "time_us": link.transfer_time_s(n) * 1e6,
                         "measured_range": "yes" if link.covers(n) else "no (extrapolated)"})
    return rows


@app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="Bundled profile name or a profile TOML path.")],
    json_out: JsonOpt = False,
    out: OutDirOpt = None,
) -> None:
    """Every field with its source, and each link's bandwidth at several transfer sizes."""
    if out is not None:
        check_output_dir(out)
    profile = load_profile(name)
    fields, links = _field_rows(profile), _link_rows(profile)
    if out is not None:
        write_frame(pl.DataFrame([{**r, "value": str(r["value"])} for r in fields]),
                    out / "profile_fields.parquet", {"kvplan.profile": profile.name})
        write_frame(pl.DataFrame(links), out / "profile_links.parquet",
                    {"kvplan.profile": profile.name})
    if json_out:
        print_json({"name": profile.name, "kind": profile.kind, "fields": fields, "links": links,
                    "provenance": profile.provenance})
        return
    console.print(rich_table(f"{profile.name} ({profile.kind}): {profile.description}", fields))
    if profile.curves:
        console.print(rich_table("Measured curves (docs/hardware-profiles.md)",
                                 _curve_rows(profile)))
    console.print(rich_table("Links: bandwidth by transfer size", links))


@app.command("validate")
def validate_cmd(
    files: Annotated[list[Path], typer.Argument(help="Profile or price-table TOML files.")],
) -> None:
    """Check profile and price-table files; the first problem is one line (exit code 2).

    A file with a [prices] table is checked as a price table, any other as a profile.
    """
    for path in files:
        if "prices" in read_toml(path):
            load_prices(path)
            console.print(f"ok: {path} (price table)")
        else:
            profile = load_profile(path)
            console.print(f"ok: {path} ({profile.name}, {profile.kind})")


@app.command("prices")
def prices_cmd(
    prices: Annotated[Path | None, typer.Option("--prices", help="Your price table TOML "
                                                "(default: the bundled one).")] = None,
    json_out: JsonOpt = False,
    out: OutDirOpt = None,
) -> None:
    """The price table the planner uses, with sources and dates (--out: prices.parquet)."""
    if out is not None:
        check_output_dir(out)
    table = load_prices(prices)
    rows = [{"price": k, "usd": getattr(table, k), "date": table.dates.get(k, ""),
             "source": table.sources.get(k, "")} for k in PRICE_FIELDS]
    if out is not None:
        write_frame(pl.DataFrame(rows), out / "prices.parquet",
                    {"kvplan.prices": str(prices) if prices else "bundled"})
    if json_out:
        print_json(rows)
    else:
        console.print(rich_table("Prices", rows))


@import_app.command("aiconfigurator")
def import_aiconfigurator(
    system: Annotated[str | None, typer.Option("--system", help="AIConfigurator system, e.g. "
                                               "h100_sxm (see --list).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="vllm, sglang or trtllm.")] = "vllm",
    version: Annotated[str | None, typer.Option("--version", help="Backend version folder "
                                                "(default: the package's current one).")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Profile whose host, host link, SSDs "
                                             "and framework overhead are kept.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Profile name (default: "
                                             "<system>-aic-<backend>).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Profile TOML to write (with "
                                             "--all: a folder); default ./<name>.toml.")] = None,
    all_systems: Annotated[bool, typer.Option("--all", help="Every system and backend the "
                                              "package holds (into the --out folder).")] = False,
    list_only: Annotated[bool, typer.Option("--list", help="List systems, backends and "
                                            "versions with tables.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Import AIConfigurator's measured kernel tables (pip install 'kvplan[import]')."""
    from kvplan.hardware import aiconfigurator as aic

    root = aic.systems_dir()
    if list_only:
        rows = [{"system": s, "backend": b, "versions": ", ".join(v),
                 "base_profile": aic.BASE_PROFILES.get(s, "(needs --base)")}
                for s, backends in aic.available(root).items() for b, v in backends.items()]
        print_json(rows) if json_out else console.print(rich_table(
            f"aiconfigurator-core {aic.package_version()} measured tables", rows))
        return
    if all_systems:
        jobs = [(s, b) for s, backends in aic.available(root).items() for b in backends]
        folder = out or Path(".")
    elif system is None:
        raise KvplanError("--system: name one (see --list) or pass --all")
    else:
        jobs, folder = [(system, backend)], None
    written, skipped = [], []
    for sys_name, back in jobs:
        src = aic.resolve(sys_name, back, version, root)
        if base is None and sys_name not in aic.BASE_PROFILES:
            skipped.append(f"{sys_name}/{back}: no bundled base profile (pass --base)")
            continue
        profile = aic.import_profile(src, load_profile(base) if base else None,
                                     name if len(jobs) == 1 else None)
        path = (folder / f"{profile.name}.toml") if folder is not None else (
            out or Path(f"{profile.name}.toml"))
        write_profile(profile, path)
        written.append({"profile": profile.name, "path": str(path), "system": sys_name,
                        "backend": back, "tables": profile.provenance["run"]})
    if json_out:
        print_json({"written": written, "skipped": skipped})
        return
    console.print(rich_table("Imported profiles", written))
    for line in skipped:
        console.print(f"skipped: {line}", markup=False, highlight=False)


@import_app.command("llmservingsim")
def import_llmservingsim(
    bundle: Annotated[Path, typer.Argument(help="LLMServingSim profile folder "
                                           "profiler/perf/<HW>/<model>/<variant>/ (or a tp<N>/ "
                                           "in it).")],
    model: Annotated[str | None, typer.Option("--model", help="Model preset or config.json of "
                                              "the bundle (default: its meta.yaml model).")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Profile whose GPU peaks, host, "
                                             "link and SSDs are kept (default: the bundled "
                                             "profile of the bundle's GPU).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Profile name (default: "
                                             "<base>-lss).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Profile TOML to write; "
                                             "default ./<name>.toml.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import LLMServingSim's measured per-layer kernel times (MIT; needs PyYAML)."""
    from kvplan.hardware import llmservingsim as lss

    data = lss.read_bundle(bundle)
    spec = lss.model_of(data, model)
    profile = lss.import_profile(data, spec, lss.base_profile(data, base), name)
    path = out or Path(f"{profile.name}.toml")
    write_profile(profile, path)
    row = {"profile": profile.name, "path": str(path), "model": spec.name,
           "tables": profile.provenance["run"],
           "elementwise_frac": profile.ops.elementwise_frac,
           "step_overhead_us": profile.gpu.step_overhead_us,
           "overhead_per_seq_us": profile.ops.overhead_per_seq_us}
    if json_out:
        print_json({"written": [row]})
    else:
        console.print(rich_table("Imported profile", [row]))
