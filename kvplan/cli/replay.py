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
from kvplan.atomic import check_output_dir
from kvplan.cli.options import (
    DpOpt,
    EpOpt,
    ImbalanceOpt,
    JsonOpt,
    ModelOpt,
    OutDirOpt,
    ProfileOpt,
    RayAddressOpt,
    RayOpt,
    TpOpt,
    TraceOpt,
)
from kvplan.cli.output import console, print_json, rich_table, write_frame
from kvplan.cost.layout import Layout
from kvplan.cost.model import GIB, CostModel
from kvplan.engines import TierChoice, engine_settings
from kvplan.engines.base import model_id
from kvplan.errors import KvplanError
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model
from kvplan.plan.executor import LOCAL_CLUSTER, Files, RayCluster, Shared, with_local_files
from kvplan.plan.replicas import replay_replicas
from kvplan.report.engine_files import write_engine_files
from kvplan.sim.build import build_cost
from kvplan.sim.config import ReplayConfig
from kvplan.sim.prefetch.headroom import headroom
from kvplan.sim.replay import run_replay
from kvplan.sim.results import ReplayResult
from kvplan.trace import load_workload
from kvplan.workload import Workload

_COMPARE_KEYS = {"eviction": "eviction", "prefetch": "prefetch", "write": "write",
                 "dram-gib": "dram_gib", "ssd-gib": "ssd_gib", "hbm-kv-gib": "hbm_kv_gib",
                 "lookahead": "lookahead_iters", "session-ttl-s": "session_ttl_s",
                 "staging-frac": "staging_budget_frac", "stage-ttl-s": "stage_ttl_s",
                 "mode": "mode", "tp": "tp", "dp": "dp"}
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
    tp: TpOpt = None,
    dp: DpOpt = 1,
    ep: EpOpt = 1,
    expert_imbalance: ImbalanceOpt = 1.0,
    hbm_kv_gib: Annotated[float | None, typer.Option(
        "--hbm-kv-gib", help="HBM for KV (default: GPU memory - weights - activation reserve).")
    ] = None,
    dram_gib: Annotated[float, typer.Option("--dram-gib", help="DRAM KV tier (0 = absent).")] = _D.dram_gib,
    ssd_gib: Annotated[float, typer.Option("--ssd-gib", help="SSD KV tier (0 = absent).")] = _D.ssd_gib,
    eviction: Annotated[str, typer.Option(
        "--eviction", help="Eviction policy for every tier, or per tier: hbm=lru,dram=s3fifo.")
    ] = _D.eviction_hbm,
    prefetch: Annotated[str, typer.Option(
        "--prefetch", help="none, lookahead, session, session+lookahead or oracle (a bound).")
    ] = _D.prefetch,
    lookahead: Annotated[int, typer.Option(
        "--lookahead", help="lookahead: iterations ahead to stage (K).")] = _D.lookahead_iters,
    staging_frac: Annotated[float, typer.Option(
        "--staging-frac", help="lookahead, session: share of HBM KV that staged blocks may "
        "hold.")] = _D.staging_budget_frac,
    stage_ttl_s: Annotated[float, typer.Option(
        "--stage-ttl-s", help="session: drop a stage when the next turn has not come this "
        "long after the previous one ended.")] = _D.stage_ttl_s,
    layerwise_load: Annotated[bool, typer.Option(
        "--layerwise-load", help="Loads overlap the request's own prefill layer by layer "
        "(LMCache use_layerwise, SGLang HiCache; docs/simulation.md).")] = _D.layerwise_load,
    write: Annotated[str, typer.Option(
        "--write", help="write-through, write-through-selective or write-back.")
    ] = _D.write,
    store_threshold: Annotated[int, typer.Option(
        "--store-threshold", help="write-through-selective: offload on the n-th hit.")] = _D.store_threshold,
    exclusive: Annotated[bool, typer.Option(
        "--exclusive", help="Exclusive tiers (a block lives in one tier) instead of inclusive.")
    ] = not _D.inclusive,
    session_ttl_s: Annotated[float, typer.Option(
        "--session-ttl-s", help="Pin a finished turn's blocks in HBM this long (0 = off).")] = _D.session_ttl_s,
    block_size: Annotated[int | None, typer.Option(
        "--block-size", help="Tokens per KV block (default: the trace's own).")] = None,
    kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="bf16, fp16, fp8, int4, int2.")
                        ] = _D.kv_dtype,
    slo_ttft_ms: Annotated[float | None, typer.Option("--slo-ttft-ms", help="TTFT objective.")
                           ] = None,
    slo_tpot_ms: Annotated[float | None, typer.Option("--slo-tpot-ms", help="TPOT objective.")
                           ] = None,
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
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    out: OutDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a workload through a serving replica with tiered KV (docs/simulation.md)."""
    if out is not None:
        check_output_dir(out)
    if mode not in ("event", "cache"):
        raise KvplanError(f"--mode: expected event or cache, got '{mode}'")
    layout = Layout(tp=tp, dp=dp, ep=ep, expert_imbalance=expert_imbalance)
    base = ReplayConfig(
        model=model, profile=profile, kv_dtype=kv_dtype, layout=layout, mode=mode,
        hbm_kv_gib=hbm_kv_gib,
        dram_gib=dram_gib, ssd_gib=ssd_gib, **_eviction_fields(eviction), prefetch=prefetch,
        lookahead_iters=lookahead, staging_budget_frac=staging_frac, stage_ttl_s=stage_ttl_s,
        layerwise_load=layerwise_load, write=write,
        store_threshold=store_threshold, inclusive=not exclusive, session_ttl_s=session_ttl_s,
        max_batched_tokens=max_batched_tokens, max_seqs=max_seqs, slo_ttft_ms=slo_ttft_ms,
        slo_tpot_ms=slo_tpot_ms)
    variants = _variants(base, compare)
    resolved, layout_text = resolve_layout(base)
    address = ray_address or (LOCAL_CLUSTER if ray else None)
    if address is not None and compare is None:
        raise KvplanError("--ray runs the variants of --compare as Ray tasks; add --compare")
    workload = load_workload(trace, block_size=block_size)
    progress = sys.stderr.isatty() and not as_json and address is None
    if address is None:
        results = [item for name, cfg in variants
                   for item in _replay(workload, cfg, name, progress,
                                       per_replica=compare is None)]
    else:
        results = _replay_on_ray(address, workload, variants)
    if out is not None:
        write_results(out, workload, [(n, r) for n, r in results if not n.startswith("replica")])
        if headroom(results):
            write_frame(pl.DataFrame([dataclasses.asdict(h) for h in headroom(results)],
                                     schema_overrides={"captured_frac": pl.Float64}),
                        out / "headroom.parquet")
        engines_note = _write_engine_files(out, base, workload.block_size, compare)
    if as_json:
        print_json([{"variant": n, "config": dataclasses.asdict(r.config),
                     "layout": dataclasses.asdict(resolved), "run": r.run.as_row()}
                    for n, r in results])
        return
    title = f"kvplan replay: {workload.meta.source_file}, {model} on {profile}"
    console.print(rich_table(title, summary_rows(results), ["metric", *(n for n, _ in results)]))
    if compare is not None and compare.split("=")[0] in ("tp", "dp"):
        layout_text = f"{layout_text} (the variants change {compare.split('=')[0]})"
    console.print(f"layout: {layout_text}", soft_wrap=True, markup=False, highlight=False)
    rows = headroom_rows(results)
    if rows:
        console.print(rich_table("prefetch headroom: share of the oracle's stall reduction "
                                 "captured", rows, list(rows[0])))
    for name, r in results:
        text = r.run.timing.extrapolated.text if r.run.timing else ""
        if text:
            label = f"{name}: " if compare else ""
            console.print(f"warning: {label}outside the calibrated ranges (curves clamped): "
                          f"{text}", soft_wrap=True, markup=False, highlight=False)
    if out is not None:
        console.print(f"wrote requests.parquet, run.parquet, timeseries.parquet to {out}"
                      + engines_note, highlight=False)


def _write_engine_files(out: Path, config: ReplayConfig, block_size: int,
                        compare: str | None) -> str:
    """Each engine's settings for one replica of the replayed configuration under
    ``out/engines`` (docs/engines.md); none for ``--compare`` runs or per-tier eviction."""
    evictions = {config.eviction_hbm, config.eviction_dram, config.eviction_ssd}
    if compare is not None or len(evictions) > 1 or config.mode != "event":
        return ""
    cost = build_cost(config)
    choice = TierChoice(
        model=model_id(config.model, cost.spec.source), block_size=block_size,
        kv_bytes_per_token=cost.kv_bytes_per_token,
        hbm_kv_bytes=cost.hbm_kv_capacity_bytes(config.hbm_kv_gib),
        dram_bytes=int(config.dram_gib * GIB), ssd_bytes=int(config.ssd_gib * GIB),
        eviction=config.eviction_hbm, write=config.write, prefetch=config.prefetch,
        inclusive=config.inclusive, store_threshold=config.store_threshold, tp=cost.layout.tp,
        max_batched_tokens=config.max_batched_tokens, max_seqs=config.max_seqs)
    write_engine_files(engine_settings(choice), out / "engines")
    return " and engine settings to engines/"


def resolve_layout(cfg: ReplayConfig) -> tuple[Layout, str]:
    """The layout the replay runs (tp resolved) and one line saying how it was chosen."""
    cost = CostModel.build(load_model(cfg.model), load_profile(cfg.profile), cfg.kv_dtype,
                           layout=cfg.layout, max_batched_tokens=cfg.max_batched_tokens,
                           max_seqs=cfg.max_seqs)
    lay, p = cost.layout, cost.profile
    text = f"{lay.describe()} of {p.gpu.model}, GPU link {p.gpu_link_kind} " \
           f"{p.gpu_link_gbps:g} GB/s"
    if cfg.layout.tp is None:
        text += f"; tp {lay.tp} chosen: the fewest GPUs that hold {cost.spec.name} with room " \
                "for KV (--tp to change)"
    if lay.dp > 1:
        text += "; requests routed to replicas by prefix affinity (kvplan.plan.routing)"
    return lay, text


def _replay(workload: Workload, cfg: ReplayConfig, name: str, progress: bool,
            per_replica: bool) -> list[tuple[str, ReplayResult]]:
    """One variant: a single replica, or dp replicas pooled (and each one when asked)."""
    if cfg.layout.dp == 1:
        return [(name, run_replay(workload, cfg, progress=progress))]
    runs = replay_replicas(workload, cfg, progress)
    pooled = ReplayResult(cfg, runs.requests, runs.run, runs.timeseries)
    label = "all replicas" if name == "value" else f"{name} (all replicas)"
    each = [(f"replica {i + 1}", r) for i, r in enumerate(runs.results)] if per_replica else []
    return [(label, pooled), *each]


def _replay_on_ray(address: str, workload: Workload, variants: list[tuple[str, ReplayConfig]]
                   ) -> list[tuple[str, ReplayResult]]:
    """Every variant as one Ray task; the workload and the files the configs name travel
    once (kvplan.plan.executor); results in variant order, as without Ray."""
    executor = RayCluster(address, workers=len(variants) if address == LOCAL_CLUSTER else None)
    try:
        shared = executor.share(workload)
        files = Files.named_by([cfg for _, cfg in variants])
        files_ref = executor.share(files) if files.texts else None
        out: list[list[tuple[str, ReplayResult]]] = [[] for _ in variants]
        for o in executor.run(_replay_task, [(shared, files_ref, cfg, name)
                                             for name, cfg in variants]):
            if o.error is not None:
                raise o.error
            out[o.index] = o.value
        return [item for items in out for item in items]
    finally:
        executor.close()


def _replay_task(workload: Shared, files: Shared | None, cfg: ReplayConfig, name: str
                 ) -> list[tuple[str, ReplayResult]]:
    """One variant of --compare (in a Ray worker)."""
    return _replay(workload.get(), with_local_files(cfg, files), name, False, per_replica=False)


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
    names = values.split(",")
    if key == "prefetch":  # the headroom table needs both ends (kvplan.sim.prefetch.headroom)
        names = [*(["none"] if "none" not in names else []), *names,
                 *(["oracle"] if "oracle" not in names else [])]
    for v in names:
        field = _COMPARE_KEYS[key]
        if field == "eviction":
            changes: dict[str, Any] = _eviction_fields(v)
        elif field in ("dram_gib", "ssd_gib", "hbm_kv_gib", "session_ttl_s",
                       "staging_budget_frac", "stage_ttl_s"):
            changes = {field: _number(key, v, float)}
        elif field == "lookahead_iters":
            changes = {field: _number(key, v, int)}
        elif field in ("tp", "dp"):
            changes = {"layout": dataclasses.replace(base.layout, **{field: _number(key, v, int)})}
        else:
            changes = {field: v}
        out.append((f"{key}={v}", dataclasses.replace(base, **changes)))
    return out


def _number(key: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise KvplanError(f"--compare {key}: '{value}' is not a number") from None


def headroom_rows(results: list[tuple[str, ReplayResult]]) -> list[dict[str, Any]]:
    """The headroom table as printed: one row per prefetch variant (n/a where no share)."""
    label = {"none": "reference", "oracle": "bound"}
    return [{"variant": h.variant, "load stall total s": h.load_stall_s,
             "captured of oracle": label.get(h.prefetch) or (
                 "n/a" if h.captured_frac is None else f"{h.captured_frac:.1%}"),
             "staged GiB": h.staged_used_bytes / GIB,
             "staged unused GiB": h.staged_unused_bytes / GIB} for h in headroom(results)]


def summary_rows(results: list[tuple[str, ReplayResult]]) -> list[dict[str, Any]]:
    """One row per summary metric, one column per variant (GiB for byte counts)."""
    rows = []
    runs = [(name, r.run.as_row()) for name, r in results]
    for label, key in _SUMMARY:
        if not any(key in run for _, run in runs):
            continue
        row: dict[str, Any] = {"metric": label}
        for name, run in runs:
            v = run.get(key)
            row[name] = v / 2**30 if "GiB" in label and isinstance(v, int) else v
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
