"""Replay a real run under its settings and compare, metric by metric (docs/validate.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.errors import InputError, KvplanError
from kvplan.sim.replay import run_replay, validate
from kvplan.sim.results import ReplayResult
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
    """Fail before any output when the replay cannot represent the run (one line, exit 2)."""
    model_field = settings.sources.get("model", "model")
    if settings.dp != 1:
        raise KvplanError(f"{settings.sources['dp']}: data parallel size {settings.dp}: kvplan "
                          "validate replays one replica (dp 1); pass the run of one replica")
    try:
        cost = validate(workload, settings.replay_config())
    except KvplanError as exc:
        raise InputError(run.path, f"cannot replay {settings.model} on {settings.profile}: "
                         f"{exc}", field=model_field) from None
    if cost.tp != settings.tp:
        raise KvplanError(f"{settings.sources['tp']}: tensor parallel size {settings.tp}, but "
                          f"this kvplan places {settings.model} on {cost.tp} GPU(s) of "
                          f"{settings.profile} by itself; replay layouts need the cost-model "
                          "layout work (issue #10)")
    if settings.ep != 1 and cost.spec.is_moe:
        raise KvplanError(f"{settings.sources['ep']}: expert parallel size {settings.ep} is not "
                          "modelled yet (issue #10)")


def run_validation(run: EngineRun, settings: ReplaySettings, *, profile: str | None = None,
                   workload: Workload | None = None, progress: bool = False) -> Validation:
    """Replay ``run`` (``profile`` replaces the settings' profile) and compare with it."""
    workload = workload or replay_workload(run, settings)
    result = run_replay(workload, settings.replay_config(profile), progress=progress)
    per_request = per_request_frame(run.requests, result.requests)
    return Validation(run=run, settings=settings, comparison=compare(per_request),
                      requests=per_request, sim_timeseries=result.timeseries,
                      stop_reason=_stop_reason(result))


def _stop_reason(result: ReplayResult) -> str:
    """The one figure read from the run summary (``ReplayResult.run``)."""
    return str(result.run.get("stop_reason", "done"))
