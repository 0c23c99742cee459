"""Replay a real run under its settings and compare, metric by metric (docs/validate.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.cost.layout import check_layout
from kvplan.errors import InputError, KvplanError
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model
from kvplan.plan.replicas import replay_replicas
from kvplan.sim.replay import run_replay, validate
from kvplan.sim.results import RunSummary
from kvplan.trace.hashing import block_positions, chain_units
from kvplan.trace.table import Columns, build_workload, content_free_columns
from kvplan.validate.metrics import Comparison, compare, per_request_frame
from kvplan.validate.run import EngineRun
from kvplan.validate.settings import ReplaySettings
from kvplan.workload import Workload, WorkloadMeta


@dataclass(frozen=True)
class Validation:
    """A run, the settings it was replayed under, and how far the replay is."""

    run: EngineRun
    settings: ReplaySettings
    comparison: Comparison
    requests: pl.DataFrame
    """Per request, real vs simulated (columns in docs/validate.md)."""
    sim_timeseries: pl.DataFrame
    """The replay's per-second series (running, waiting, ...: docs/metrics.md)."""
    stop_reason: str
    """``done`` unless the replay hit a cap (then some requests are unfinished)."""

    def within(self, tolerance: float) -> bool:
        return not self.comparison.outside(tolerance)


def replay_workload(run: EngineRun, settings: ReplaySettings) -> Workload:
    """The run's successful requests as a canonical workload at the replay's block size.

    Prompt token ids (when logged and prefix caching was on) give chained block hashes, so
    shared prefixes hit; otherwise every block is unique (lengths only).
    """
    t, bs = run.requests, settings.block_size
    arrival, inp, out = (t[c].to_numpy() for c in ("arrival_s", "input_tokens", "output_tokens"))
    tokens = run.prompt_token_ids if settings.prefix_caching else None
    if tokens is None:
        cols = content_free_columns(arrival, inp, out, bs)
    else:
        flat = np.concatenate(tokens) if tokens else np.zeros(0, np.uint64)
        starts = np.r_[0, np.cumsum([len(x) for x in tokens])[:-1]].astype(np.int64)
        chain = chain_units(flat, np.r_[starts, len(flat)])
        n_blocks = inp.astype(np.int64) // bs
        offsets = np.r_[0, np.cumsum(n_blocks)].astype(np.int64)
        cols = Columns(None, arrival, inp, out, chain[block_positions(starts, n_blocks, bs)],
                       offsets)
    meta = WorkloadMeta(source_format=run.source_format, source_file=run.path.name,
                        block_size=bs, tokenizer="none" if tokens is None else "engine",
                        has_content=tokens is not None,
                        notes="" if tokens is not None else "lengths only: no prefix sharing")
    return build_workload(cols, meta)


def check_replayable(run: EngineRun, settings: ReplaySettings, workload: Workload) -> None:
    """Fail before any output when the replay cannot represent the run (one line, exit 2): a
    layout the profile cannot hold names its flag or log field, anything else the model."""
    config = settings.replay_config()
    spec = load_model(settings.model)
    try:
        check_layout(config.layout, spec, load_profile(settings.profile))
    except KvplanError as exc:
        where = ", ".join(f"{k} from {settings.sources[k]}" for k in ("tp", "dp", "ep"))
        raise KvplanError(f"{exc} ({where})") from None
    try:
        validate(workload, config).hbm_kv_capacity_bytes()   # the weights fit beside KV
    except KvplanError as exc:
        raise InputError(run.path, f"cannot replay {settings.model} on {settings.profile}: "
                         f"{exc}", field=settings.sources.get("model", "model")) from None


def run_validation(run: EngineRun, settings: ReplaySettings, *, profile: str | None = None,
                   workload: Workload | None = None, progress: bool = False) -> Validation:
    """Replay ``run`` (``profile`` replaces the settings' profile) and compare with it; a run
    of dp > 1 replicas replays as dp replicas (kvplan.plan.replicas), pooled."""
    workload = workload or replay_workload(run, settings)
    config = settings.replay_config(profile)
    if config.layout.dp == 1:
        result = run_replay(workload, config, progress=progress)
        requests, series, stop = result.requests, result.timeseries, _stop_reason(result.run)
    else:
        runs = replay_replicas(workload, config, progress)
        requests, series, stop = runs.requests, _summed(runs.timeseries), _stop_reason(runs.run)
    per_request = per_request_frame(run.requests, requests)
    return Validation(run=run, settings=settings, comparison=compare(per_request),
                      requests=per_request, sim_timeseries=series, stop_reason=stop)


def _summed(series: pl.DataFrame) -> pl.DataFrame:
    """Replicas' per-second request counts added up (the queues of the whole deployment)."""
    if series.is_empty():
        return series
    return series.group_by("t_s").agg(pl.col("running", "waiting").sum()).sort("t_s")


def _stop_reason(run: RunSummary) -> str:
    """The one figure read from the run summary (``ReplayResult.run``)."""
    return (run.timing.stop_reason if run.timing else "") or "done"
