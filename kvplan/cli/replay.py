"""`kvplan replay`: replay a workload through one serving configuration (or a few, compared).

With no arguments: the bundled Mooncake trace on llama-3.1-8b / h100-sxm, HBM only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from kvplan import __version__
from kvplan.atomic import check_output_dir
from kvplan.bounds import check_value
from kvplan.cli.checks import (
    check_config,
    check_variants,
    choose,
    compare_bound,
    replace_field,
)
from kvplan.cli.options import (
    HBM_KV_BLOCKS_HELP,
    HBM_KV_TOKENS_HELP,
    ArrivalsOpt,
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
    check_arrivals,
    check_hbm_alternatives,
)
from kvplan.cli.output import console, print_json, rich_table, write_frame
from kvplan.cost.layout import Layout
from kvplan.cost.model import GIB, CostModel
from kvplan.engines import ENGINES, FREE, TierChoice, engine, engine_settings, storage_wait
from kvplan.engines.base import model_id
from kvplan.errors import KvplanError
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model
from kvplan.plan.executor import LOCAL_CLUSTER, Files, RayCluster, Shared, with_local_files
from kvplan.plan.replicas import replay_replicas
from kvplan.report.engine_files import write_engine_files
from kvplan.report.replay_tables import run_record, summary_rows, verdict_lines
from kvplan.sim.build import build_cost, hbm_kv_gib_of
from kvplan.sim.config import ReplayConfig
from kvplan.sim.prefetch.headroom import headroom
from kvplan.sim.replay import run_replay
from kvplan.sim.results import ReplayResult
from kvplan.sim.sessions import has_sessions, session_summary, session_table
from kvplan.trace import load_workload
from kvplan.workload import Workload

_COMPARE_KEYS: dict[str, tuple[str, ...]] = {
    "eviction": ("eviction_hbm", "eviction_dram", "eviction_ssd"), "prefetch": ("prefetch",),
    "write": ("write",), "dram-gib": ("dram_gib",), "ssd-gib": ("ssd_gib",),
    "hbm-kv-gib": ("hbm_kv_gib",), "lookahead": ("lookahead_iters",),
    "session-ttl-s": ("session_ttl_s",), "staging-frac": ("staging_budget_frac",),
    "stage-ttl-s": ("stage_ttl_s",), "mode": ("mode",), "tp": ("layout.tp",),
    "dp": ("layout.dp",), "engine": ("engine",), "arrivals": ("arrivals",),
    "storage-prefetch": ("storage_prefetch",)}
"""--compare KEY (the flag without its dashes) -> the ReplayConfig fields it sets."""
_D = ReplayConfig()
"""Where the options' defaults come from."""


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
    hbm_kv_blocks: Annotated[int | None, typer.Option(
        "--hbm-kv-blocks", min=1, help=HBM_KV_BLOCKS_HELP)] = None,
    hbm_kv_tokens: Annotated[int | None, typer.Option(
        "--hbm-kv-tokens", min=1, help=HBM_KV_TOKENS_HELP)] = None,
    dram_gib: Annotated[float, typer.Option("--dram-gib", help="DRAM KV tier (0 = absent).")] = _D.dram_gib,
    ssd_gib: Annotated[float, typer.Option("--ssd-gib", help="SSD KV tier (0 = absent).")] = _D.ssd_gib,
    eviction: Annotated[str, typer.Option(
        "--eviction", help="Eviction policy for every tier, or per tier: hbm=lru,dram=s3fifo.")
    ] = _D.eviction_hbm,
    prefetch: Annotated[str, typer.Option(
        "--prefetch", help="none, lookahead, session, session+lookahead or oracle (a bound).")
    ] = _D.prefetch,
    storage_prefetch: Annotated[str | None, typer.Option(
        "--storage-prefetch", help="--engine sglang-hicache: how long admission waits for SSD "
        "hits: wait_complete (default), best_effort or timeout (SGLang's formula); what has not "
        "landed is recomputed.")] = None,
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
    arrivals: ArrivalsOpt = None,
    block_size: Annotated[int | None, typer.Option(
        "--block-size", help="Tokens per KV block (default: the trace's own).")] = None,
    kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="bf16, fp16, fp8, int4, int2.")
                        ] = _D.kv_dtype,
    slo_ttft_ms: Annotated[float | None, typer.Option(
        "--slo-ttft-ms", help="TTFT objective in ms for goodput and SLO attainment (default: "
        "none; both then say n/a).")] = None,
    slo_tpot_ms: Annotated[float | None, typer.Option(
        "--slo-tpot-ms", help="TPOT objective in ms (default: none).")] = None,
    mode: Annotated[str, typer.Option(
        "--mode", help="event (timed replica) or cache (timing-free block replay).")] = _D.mode,
    max_batched_tokens: Annotated[int, typer.Option(
        "--max-batched-tokens", help="Scheduler token budget per iteration.")
    ] = _D.max_batched_tokens,
    max_seqs: Annotated[int, typer.Option("--max-seqs", help="Maximum running sequences.")
                        ] = _D.max_seqs,
    engine_name: Annotated[str, typer.Option(
        "--engine", help="Run as this engine runs (its scheduler rules and offload filters; "
        "refused if it cannot run the configuration): vllm, vllm+lmcache, sglang-hicache, "
        "dynamo-kvbm, or none (kvplan's own rules).")] = _D.engine,
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
    arrivals = check_arrivals(arrivals or _D.arrivals)
    choose("--engine", engine_name, (*ENGINES, FREE))
    check_hbm_alternatives(hbm_kv_gib, hbm_kv_blocks, hbm_kv_tokens)
    layout = Layout(tp=tp, dp=dp, ep=ep, expert_imbalance=expert_imbalance)
    base = ReplayConfig(
        model=model, profile=profile, kv_dtype=kv_dtype, layout=layout, mode=mode,
        hbm_kv_gib=hbm_kv_gib,
        dram_gib=dram_gib, ssd_gib=ssd_gib, **_eviction_fields(eviction), prefetch=prefetch,
        lookahead_iters=lookahead, staging_budget_frac=staging_frac, stage_ttl_s=stage_ttl_s,
        layerwise_load=layerwise_load, write=write,
        store_threshold=store_threshold, inclusive=not exclusive, session_ttl_s=session_ttl_s,
        arrivals=arrivals, max_batched_tokens=max_batched_tokens, max_seqs=max_seqs,
        slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms, engine=engine_name,
        storage_prefetch=storage_prefetch or _D.storage_prefetch)
    check_config(base, block_size)
    variants = _variants(base, compare)
    key = compare.partition("=")[0] if compare else None
    for name, cfg in variants:
        with _in_variant(key, name):
            if key is not None:  # the values --compare sets, checked as their own flags are
                check_config(cfg, block_size)
                check_arrivals(cfg.arrivals)
                choose("--engine", cfg.engine, (*ENGINES, FREE))
            if storage_prefetch is not None or key == "storage-prefetch":
                check_storage_prefetch(cfg)
    notes = check_variants(base, variants, key, _COMPARE_KEYS.get(key or "", ()))
    resolved, layout_text = resolve_layout(base)
    address = ray_address or (LOCAL_CLUSTER if ray else None)
    if address is not None and compare is None:
        raise KvplanError("--ray runs the variants of --compare as Ray tasks; add --compare")
    workload = load_workload(trace, block_size=block_size)
    base = dataclasses.replace(base, hbm_kv_gib=hbm_kv_gib_given(
        base, workload.block_size, hbm_kv_gib, hbm_kv_blocks, hbm_kv_tokens))
    variants = _variants(base, compare)
    for _, cfg in variants:
        if cfg.engine != FREE:
            _check_engine(cfg, workload.block_size)
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
        summaries = {n: {row["key"]: row["value"] for row in session_summary(df)}
                     for n, df in sessions_of(results)}
        print_json([{"variant": n, "config": dataclasses.asdict(r.config),
                     "layout": dataclasses.asdict(resolved), "run": run_record(r)}
                    | ({"sessions": summaries[n]} if n in summaries else {})
                    for n, r in results])
        return
    title = f"kvplan replay: {workload.meta.source_file}, {model} on {profile}"
    names = [n for n, _ in results]
    console.print(rich_table(title, summary_rows(results), ["metric", *names], right=names))
    for line in verdict_lines(results, compare is not None) + notes:
        console.print(line, markup=False, highlight=False)
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
    sessions = sessions_of([(n, r) for n, r in results if not n.startswith("replica")])
    if sessions:
        by = [session_summary(df) for _, df in sessions]
        rows = [{"metric": row["metric"], **{n: b[k]["value"] for (n, _), b in
                                             zip(sessions, by, strict=True)}}
                for k, row in enumerate(by[0])]
        loop = "" if (compare or "").startswith("arrivals=") else f" ({base.arrivals} loop)"
        console.print(rich_table(f"sessions{loop}", rows,
                                 ["metric", *(n for n, _ in sessions)]))
    if out is not None:
        console.print(f"wrote requests.parquet, run.parquet, timeseries.parquet"
                      f"{', sessions.parquet' if sessions else ''} to {out}" + engines_note,
                      highlight=False)


def hbm_kv_gib_given(cfg: ReplayConfig, block_size: int, gib: float | None,
                     blocks: int | None, tokens: int | None) -> float | None:
    """The HBM KV size the flags give, in GiB (None: the profile's default)."""
    if blocks is None and tokens is None:
        return gib
    return hbm_kv_gib_of(blocks, tokens, block_size, build_cost(cfg).kv_bytes_per_token)


def _write_engine_files(out: Path, config: ReplayConfig, block_size: int,
                        compare: str | None) -> str:
    """The settings of ``--engine`` (default: every engine) for one replica of the replayed
    configuration under ``out/engines`` (docs/engines.md); none for ``--compare`` runs or
    cache mode."""
    if compare is not None or config.mode != "event":
        return ""
    choice = _tier_choice(config, block_size)
    settings = engine_settings(choice) if config.engine == FREE else \
        [engine(config.engine).settings(choice)]
    write_engine_files(settings, out / "engines")
    return " and engine settings to engines/"


def _tier_choice(config: ReplayConfig, block_size: int) -> TierChoice:
    """One replica of ``config`` as the engines must be told it."""
    cost = build_cost(config)
    return TierChoice(
        model=model_id(config.model, cost.spec.source), block_size=block_size,
        kv_bytes_per_token=cost.kv_bytes_per_token,
        hbm_kv_bytes=cost.hbm_kv_capacity_bytes(config.hbm_kv_gib),
        dram_bytes=int(config.dram_gib * GIB), ssd_bytes=int(config.ssd_gib * GIB),
        eviction=config.eviction_hbm,
        evictions=config.evictions if len(set(config.evictions)) > 1 else (),
        write=config.write, prefetch=config.prefetch, storage_prefetch=config.storage_prefetch,
        inclusive=config.inclusive, store_threshold=config.store_threshold, tp=cost.layout.tp,
        max_batched_tokens=config.max_batched_tokens, max_seqs=config.max_seqs)


def check_storage_prefetch(config: ReplayConfig) -> None:
    """``--storage-prefetch`` only with an engine that declares the policies (SGLang)."""
    if config.engine == FREE or not engine(config.engine).caps.storage_waits:
        raise KvplanError("--storage-prefetch is valid only with --engine sglang-hicache "
                          f"(got --engine {config.engine})")
    storage_wait(config.engine, config.storage_prefetch)


def _check_engine(config: ReplayConfig, block_size: int) -> None:
    """Refuse a configuration ``--engine`` cannot run, naming every rule it breaks."""
    settings = engine(config.engine).settings(_tier_choice(config, block_size))
    broken = [f"{c.rule} ({c.detail})" for c in settings.checks if not c.ok]
    if broken:
        raise KvplanError(f"--engine {config.engine}: {settings.label} cannot run this "
                          f"configuration: {'; '.join(broken)}")


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


@contextlib.contextmanager
def _in_variant(key: str | None, name: str) -> Iterator[None]:
    """A check's error named by the ``--compare`` variant it is about (as is, without one).
    Example: ``--compare mode: in variant mode=nope, --mode: expected one of ...``."""
    try:
        yield
    except KvplanError as exc:
        if key is None:
            raise
        raise KvplanError(f"--compare {key}: in variant {name}, {exc}") from None


def _variants(base: ReplayConfig, compare: str | None) -> list[tuple[str, ReplayConfig]]:
    """``key=v1,v2,...`` -> one config per value, named ``key=value`` (numbers checked
    against the flag's bound)."""
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
        if key == "eviction":
            cfg = dataclasses.replace(base, **_eviction_fields(v))
        else:
            bound = compare_bound(key)
            value: Any = v if bound is None else _number(key, v, int if bound.whole else float)
            if bound is not None:
                check_value(f"--compare {key}", value, bound)
            cfg = replace_field(base, _COMPARE_KEYS[key][0], value)
        out.append((f"{key}={v}", cfg))
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


def write_results(out: Path, workload: Workload, results: list[tuple[str, ReplayResult]]
                  ) -> None:
    """requests / run / timeseries / sessions Parquet (a ``variant`` column first), config in
    metadata; sessions only for event-mode runs of workloads with sessions."""
    meta = {"kvplan.version": __version__,
            "kvplan.workload": json.dumps(dataclasses.asdict(workload.meta), sort_keys=True),
            "kvplan.replay_configs": json.dumps(
                {n: dataclasses.asdict(r.config) for n, r in results}, sort_keys=True)}
    frames = {
        "requests": [(n, r.requests) for n, r in results],
        "run": [(n, pl.DataFrame([run_record(r)])) for n, r in results],
        "timeseries": [(n, r.timeseries) for n, r in results],
        "sessions": sessions_of(results),
    }
    for name, dfs in frames.items():
        if dfs:
            tagged = [df.select(pl.lit(n).alias("variant"), pl.all()) for n, df in dfs]
            write_frame(pl.concat(tagged, how="diagonal_relaxed"), out / f"{name}.parquet",
                        meta)


def sessions_of(results: list[tuple[str, ReplayResult]]) -> list[tuple[str, pl.DataFrame]]:
    """The per-session table of each event-mode variant whose workload has sessions."""
    return [(n, session_table(r.requests)) for n, r in results
            if r.config.mode == "event" and has_sessions(r.requests)]
