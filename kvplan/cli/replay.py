"""`kvplan replay`: replay a workload through one serving configuration (or a few, compared).

With no arguments: the bundled Mooncake trace on llama-3.1-8b / h100-sxm, HBM only.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from kvplan import __version__
from kvplan.cli.options import JsonOpt, ModelOpt, OutDirOpt, ProfileOpt, TraceOpt
from kvplan.cli.output import console, print_json, rich_table, write_frame
from kvplan.errors import KvplanError
from kvplan.sim.config import ReplayConfig
from kvplan.sim.replay import run_replay
from kvplan.sim.results import ReplayResult
from kvplan.trace import load_workload
from kvplan.units import GIB
from kvplan.workload import Workload

_COMPARE_KEYS = {"eviction": "eviction", "prefetch": "prefetch", "write": "write",
                 "dram-gib": "dram_gib", "ssd-gib": "ssd_gib", "hbm-kv-gib": "hbm_kv_gib",
                 "lookahead": "lookahead_iters", "session-ttl-s": "session_ttl_s",
                 "mode": "mode"}
_D = ReplayConfig()
"""Where the options' defaults come from."""
_SUMMARY = (
    ("finished", "finished"), ("stop", "stop_reason"), ("bound", "bound"),
    ("simulated s", "sim_duration_s"), ("output tok/s", "throughput_tok_s"),
    ("goodput req/s", "goodput_req_s"), ("SLO attained", "slo_attained_frac"),
    ("TTFT p50 ms", "ttft_p50_ms"), ("TTFT p99 ms", "ttft_p99_ms"),
    ("TPOT p50 ms", "tpot_p50_ms"), ("TPOT p99 ms", "tpot_p99_ms"),
    ("E2E p50 ms", "e2e_p50_ms"), ("load stall total s", "load_stall_total_s"),
    ("hit ratio HBM (blocks)", "hit_ratio_hbm_blocks"),
    ("hit ratio DRAM (blocks)", "hit_ratio_dram_blocks"),
    ("hit ratio SSD (blocks)", "hit_ratio_ssd_blocks"), ("preemptions", "preemptions"),
    ("h2d GiB", "h2d_bytes"), ("d2h GiB", "d2h_bytes"), ("ssd_read GiB", "ssd_read_bytes"),
    ("SSD written GiB", "ssd_bytes_written"), ("SSD drive writes/day", "ssd_drive_writes_per_day"),
    ("peak HBM GiB", "hbm_peak_gib"), ("peak DRAM GiB", "dram_peak_gib"),
    ("peak SSD GiB", "ssd_peak_gib"),
)


def replay(
    trace: TraceOpt = None,
    model: ModelOpt = _D.model,
    profile: ProfileOpt = _D.profile,
    hbm_kv_gib: Annotated[float | None, typer.Option(
        "--hbm-kv-gib", help="HBM for KV (default: GPU memory - weights - activation reserve).")
    ] = _D.hbm_kv_gib,
    dram_gib: Annotated[float, typer.Option(
        "--dram-gib", help="DRAM KV tier (0 = absent).")] = _D.dram_gib,
    ssd_gib: Annotated[float, typer.Option(
        "--ssd-gib", help="SSD KV tier (0 = absent).")] = _D.ssd_gib,
    eviction: Annotated[str, typer.Option(
        "--eviction", help="Eviction policy for every tier, or per tier: hbm=lru,dram=s3fifo.")
    ] = _D.eviction_hbm,
    prefetch: Annotated[str, typer.Option(
        "--prefetch", help="none, lookahead or oracle (a bound).")] = _D.prefetch,
    lookahead: Annotated[int, typer.Option(
        "--lookahead", help="lookahead: iterations ahead to stage (K).")] = _D.lookahead_iters,
    staging_frac: Annotated[float, typer.Option(
        "--staging-frac", help="lookahead: share of HBM KV that staged blocks may hold.")
    ] = _D.staging_budget_frac,
    write: Annotated[str, typer.Option(
        "--write", help="write-through, write-through-selective or write-back.")
    ] = _D.write,
    store_threshold: Annotated[int, typer.Option(
        "--store-threshold", help="write-through-selective: offload on the n-th hit.")
    ] = _D.store_threshold,
    exclusive: Annotated[bool, typer.Option(
        "--exclusive", help="Exclusive tiers (a block lives in one tier) instead of inclusive.")
    ] = not _D.inclusive,
    session_ttl_s: Annotated[float, typer.Option(
        "--session-ttl-s", help="Pin a finished turn's blocks in HBM this long (0 = off).")
    ] = _D.session_ttl_s,
    block_size: Annotated[int | None, typer.Option(
        "--block-size", help="Tokens per KV block (default: the trace's own).")] = None,
    kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="bf16, fp16, fp8, int4, int2.")
                        ] = _D.kv_dtype,
    slo_ttft_ms: Annotated[float | None, typer.Option("--slo-ttft-ms", help="TTFT objective.")
                           ] = _D.slo_ttft_ms,
    slo_tpot_ms: Annotated[float | None, typer.Option("--slo-tpot-ms", help="TPOT objective.")
                           ] = _D.slo_tpot_ms,
    mode: Annotated[str, typer.Option(
        "--mode", help="event (timed replica) or cache (timing-free block replay).")] = _D.mode,
    max_batched_tokens: Annotated[int, typer.Option(
        "--max-batched-tokens", help="Scheduler token budget per iteration.")
    ] = _D.max_batched_tokens,
    max_seqs: Annotated[int, typer.Option("--max-seqs", help="Maximum running sequences.")
                        ] = _D.max_seqs,
    compare: Annotated[str | None, typer.Option(
        "--compare", help="Run variants side by side, e.g. eviction=lru,s3fifo,belady or "
        "prefetch=none,lookahead.")] = None,
    out: OutDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a workload through a serving replica with tiered KV (docs/simulation.md)."""
    if mode not in ("event", "cache"):
        raise KvplanError(f"--mode: expected event or cache, got '{mode}'")
    base = ReplayConfig(
        model=model, profile=profile, kv_dtype=kv_dtype, mode=mode, hbm_kv_gib=hbm_kv_gib,
        dram_gib=dram_gib, ssd_gib=ssd_gib, **_eviction_fields(eviction), prefetch=prefetch,
        lookahead_iters=lookahead, staging_budget_frac=staging_frac, write=write,
        store_threshold=store_threshold, inclusive=not exclusive, session_ttl_s=session_ttl_s,
        max_batched_tokens=max_batched_tokens, max_seqs=max_seqs, slo_ttft_ms=slo_ttft_ms,
        slo_tpot_ms=slo_tpot_ms)
    variants = _variants(base, compare)
    workload = load_workload(trace, block_size=block_size)
    progress = sys.stderr.isatty() and not as_json
    results = [(name, run_replay(workload, cfg, progress=progress)) for name, cfg in variants]
    if out is not None:
        write_results(out, workload, results)
    if as_json:
        print_json([{"variant": n, "config": dataclasses.asdict(r.config),
                     "run": r.run.as_row()} for n, r in results])
        return
    title = f"kvplan replay: {workload.meta.source_file}, {model} on {profile}"
    console.print(rich_table(title, summary_rows(results), ["metric", *(n for n, _ in results)]))
    for name, r in results:
        text = r.run.timing.extrapolated.text if r.run.timing else ""
        if text:
            label = f"{name}: " if compare else ""
            console.print(f"warning: {label}outside the calibrated ranges (curves clamped): "
                          f"{text}", soft_wrap=True, markup=False, highlight=False)
    if out is not None:
        console.print(f"wrote requests.parquet, run.parquet, timeseries.parquet to {out}")


def _eviction_fields(spec: str) -> dict[str, str]:
    """``lru`` -> every tier; ``hbm=lru,dram=s3fifo`` -> those tiers (others lru)."""
    if "=" not in spec:
        return {f"eviction_{t}": spec for t in ("hbm", "dram", "ssd")}
    fields: dict[str, str] = {}
    for part in spec.split(","):
        tier, _, name = part.partition("=")
        if tier.strip() not in ("hbm", "dram", "ssd") or not name:
            raise KvplanError(f"--eviction: expected NAME or hbm=NAME,dram=NAME,ssd=NAME, "
                              f"got '{spec}'")
        fields[f"eviction_{tier.strip()}"] = name.strip()
    return fields


def _variants(base: ReplayConfig, compare: str | None) -> list[tuple[str, ReplayConfig]]:
    """``key=v1,v2,...`` -> one config per value, named ``key=value``."""
    if compare is None:
        return [("value", base)]
    key, _, values = compare.partition("=")
    if key not in _COMPARE_KEYS or not values:
        raise KvplanError(f"--compare: expected KEY=V1,V2 with KEY one of "
                          f"{', '.join(_COMPARE_KEYS)}, got '{compare}'")
    out = []
    for v in values.split(","):
        field = _COMPARE_KEYS[key]
        if field == "eviction":
            changes: dict[str, Any] = _eviction_fields(v)
        elif field in ("dram_gib", "ssd_gib", "hbm_kv_gib", "session_ttl_s"):
            changes = {field: _number(key, v, float)}
        elif field == "lookahead_iters":
            changes = {field: _number(key, v, int)}
        else:
            changes = {field: v}
        out.append((f"{key}={v}", dataclasses.replace(base, **changes)))
    return out


def _number(key: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise KvplanError(f"--compare {key}: '{value}' is not a number") from None


def summary_rows(results: list[tuple[str, ReplayResult]]) -> list[dict[str, Any]]:
    """One row per summary metric, one column per variant (GiB for byte counts)."""
    flat = [(name, r.run.as_row()) for name, r in results]
    rows = []
    for label, key in _SUMMARY:
        if not any(key in run for _, run in flat):
            continue
        row: dict[str, Any] = {"metric": label}
        for name, run in flat:
            v = run.get(key)
            row[name] = v / GIB if "GiB" in label and isinstance(v, int) else v
        rows.append(row)
    return rows


def write_results(out: Path, workload: Workload, results: list[tuple[str, ReplayResult]]
                  ) -> None:
    """requests / run / timeseries Parquet (a ``variant`` column first), config in metadata."""
    meta = {"kvplan.version": __version__,
            "kvplan.workload": json.dumps(dataclasses.asdict(workload.meta), sort_keys=True),
            "kvplan.replay_configs": json.dumps(
                {n: dataclasses.asdict(r.config) for n, r in results}, sort_keys=True)}
    frames = {
        "requests": [r.requests for _, r in results],
        "run": [pl.DataFrame([r.run.as_row()]) for _, r in results],
        "timeseries": [r.timeseries for _, r in results],
    }
    for name, dfs in frames.items():
        tagged = [df.select(pl.lit(n).alias("variant"), pl.all())
                  for (n, _), df in zip(results, dfs, strict=True)]
        write_frame(pl.concat(tagged, how="diagonal_relaxed"), out / f"{name}.parquet", meta)
