"""Stage 2: re-run chosen candidates in the event simulator, in parallel processes.

A candidate of R replicas is R event replays, one per replica's routed requests
(kvplan.plan.routing), all submitted to one executor (a local process pool or Ray tasks,
kvplan.plan.executor); its simulated figures pool every replica's requests (percentiles over
all of them, hits over all prompt blocks, goodput summed). A routed sub-workload travels to
the workers once (``executor.share``), however many candidates replay it.

The executor is started before the analytic screen, so worker start-up and imports
overlap it (:func:`verification_pool`). Each run has a wall-time cap
(``ReplayConfig.max_wall_s``, enforced by the simulator; runs still going after 1.5 x the cap
+ 10 s per round of as many runs as the executor has workers are reported as timed out). The simulated figures sit
beside the analytic ones so the screen's error is visible (docs/plan.md, "verified" columns).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.errors import KvplanError
from kvplan.hierarchy import Tier
from kvplan.memory import return_freed
from kvplan.plan.executor import (
    Files,
    Outcome,
    PlanExecutor,
    Shared,
    make_executor,
    with_local_files,
)
from kvplan.plan.stages import peak_rss_mib
from kvplan.plan.window import Window
from kvplan.sim.config import ReplayConfig
from kvplan.sim.results import RunSummary

SIM_COLUMNS = ("candidate_id", "sim_finished_frac", "sim_ttft_p50_ms", "sim_ttft_pq_ms",
               "sim_tpot_ms", "sim_hit_ratio_hbm", "sim_hit_ratio_dram", "sim_hit_ratio_ssd",
               "sim_goodput_rps", "sim_throughput_tok_s", "sim_load_stall_mean_ms",
               "sim_stop_reason")
"""Columns of the verified table besides the analytic ones (docs/plan.md)."""
SUMMED = ("requests", "prompt_blocks", "hit_hbm_blocks", "hit_dram_blocks", "hit_ssd_blocks",
          "goodput_req_s", "throughput_tok_s", "load_stall_total_s")
"""Run-summary figures that add up over replicas."""


@dataclass(frozen=True)
class VerifyJob:
    """One replica of one candidate to simulate."""

    candidate_id: int
    replica: int
    """0-based replica index."""
    workload: Shared
    """The requests routed to this replica (a handle: kvplan.plan.executor.share)."""
    config: ReplayConfig
    files: Shared | None = None
    """Profile / model files the config names by path (kvplan.plan.executor.Files)."""
    requests: int = 0
    """Requests in the workload (the longest runs start first)."""


@dataclass(frozen=True)
class RunOutput:
    """What the plan keeps of one event replay."""

    candidate_id: int
    replica: int
    status: str
    """ok, timed out, or the error raised."""
    run: RunSummary | None
    """None unless ok."""
    requests: pl.DataFrame
    timeseries: pl.DataFrame
    cpu_s: float = 0.0
    """CPU seconds the run took in its worker."""
    peak_rss_mib: float = 0.0
    """Peak resident memory of the worker process so far (MiB)."""


@dataclass(frozen=True)
class WorkerFigures:
    """What the verification runs cost in their workers."""

    candidates: int
    runs: int
    requests: int
    """Requests replayed, over every run."""
    cpu_s: float
    """CPU seconds of every run, summed."""
    peak_rss_mib: float
    """Largest peak resident memory of a worker process (MiB)."""


def worker_figures(runs: list[RunOutput]) -> WorkerFigures:
    return WorkerFigures(len({r.candidate_id for r in runs}), len(runs),
                         sum(r.run.requests for r in runs if r.run is not None),
                         sum(r.cpu_s for r in runs),
                         max((r.peak_rss_mib for r in runs), default=0.0))


@contextmanager
def verification_pool(processes: int, enabled: bool = True, ray_address: str | None = None
                      ) -> Iterator[PlanExecutor | None]:
    """An executor with every worker already starting up (kvplan.plan.executor.make_executor):
    Ray at ``ray_address`` when given, else a spawn process pool; None when not ``enabled``
    (a Ray executor is always made: it also runs the screen's shards)."""
    if not enabled and ray_address is None:
        yield None
        return
    executor = make_executor(ray_address, processes)
    finished = False
    try:
        yield executor
        finished = True
    finally:
        if not finished:  # an interrupted or failed plan stops its workers at once, quietly
            executor.abort()
        executor.close()


def simulate(job: VerifyJob) -> RunOutput:
    """Run one event replay (in a worker)."""
    from kvplan.sim.replay import run_replay

    cpu0 = time.process_time()
    res = run_replay(job.workload.get(), with_local_files(job.config, job.files))
    req = res.requests.with_columns(pl.lit(job.candidate_id).alias("candidate_id"),
                                    pl.lit(job.replica).alias("replica"))
    ts = res.timeseries.with_columns(pl.lit(job.replica).alias("replica"))
    return_freed()  # the run's state, before the worker's next run
    return RunOutput(job.candidate_id, job.replica, "ok", res.run, req, ts,
                     time.process_time() - cpu0, peak_rss_mib())


def files_of(executor: PlanExecutor, configs: list[ReplayConfig]) -> Shared | None:
    """The profile / model files ``configs`` name by path, shared once (None: none)."""
    files = Files.named_by(configs)
    return executor.share(files) if files.texts else None


def totals(sums: list[RunSummary]) -> dict[str, float]:
    """The SUMMED figures over replicas' run summaries."""
    timings = [s.timing for s in sums if s.timing is not None]
    return {"requests": sum(s.requests for s in sums),
            "prompt_blocks": sum(s.prompt_blocks for s in sums),
            **{f"hit_{t.label}_blocks": sum(s.tier(t).hit_blocks for s in sums) for t in Tier},
            "goodput_req_s": sum(t.goodput_req_s for t in timings),
            "throughput_tok_s": sum(t.throughput_tok_s for t in timings),
            "load_stall_total_s": sum(t.load_stall_total_s for t in timings)}


def summarise(candidate_id: int, runs: list[RunOutput], percentile: float,
              window: Window | None = None, slo_ttft_ms: float | None = None,
              slo_tpot_ms: float | None = None) -> dict:
    """Pooled simulated figures of one candidate's replicas at the SLO percentile (with a
    ``window``: over the requests arriving in it, kvplan.plan.window)."""
    failed = [r.status for r in runs if r.status != "ok"]
    if failed:
        return dict.fromkeys(SIM_COLUMNS) | {"candidate_id": candidate_id,
                                             "sim_finished_frac": 0.0,
                                             "sim_stop_reason": failed[0]}
    req = pl.concat([r.requests for r in runs], how="diagonal_relaxed")
    if window is not None:
        req = req.filter(pl.col("arrival_s").is_between(window.start_s, window.end_s,
                                                        closed="left"))
    fin = req.filter(pl.col("finished")) if "finished" in req.columns else req
    ttft = fin["ttft_s"].drop_nulls().to_numpy()
    tpot = fin["tpot_s"].drop_nulls().to_numpy()
    sums = [r.run for r in runs if r.run is not None]
    tot = totals(sums) if window is None \
        else window_totals(req, fin, window, slo_ttft_ms, slo_tpot_ms)
    blocks = max(tot["prompt_blocks"], 1.0)
    reasons = sorted({s.timing.stop_reason for s in sums if s.timing is not None})
    return {
        "candidate_id": candidate_id,
        "sim_finished_frac": fin.height / max(req.height, 1),
        "sim_ttft_p50_ms": float(np.quantile(ttft, 0.5)) * 1e3 if ttft.size else None,
        "sim_ttft_pq_ms": float(np.quantile(ttft, percentile / 100)) * 1e3 if ttft.size else None,
        "sim_tpot_ms": float(tpot.mean()) * 1e3 if tpot.size else None,
        "sim_hit_ratio_hbm": tot["hit_hbm_blocks"] / blocks,
        "sim_hit_ratio_dram": tot["hit_dram_blocks"] / blocks,
        "sim_hit_ratio_ssd": tot["hit_ssd_blocks"] / blocks,
        "sim_goodput_rps": tot["goodput_req_s"],
        "sim_throughput_tok_s": tot["throughput_tok_s"],
        "sim_load_stall_mean_ms": tot["load_stall_total_s"] / max(tot["requests"], 1.0) * 1e3,
        "sim_stop_reason": ", ".join(reasons),
    }


def window_totals(req: pl.DataFrame, fin: pl.DataFrame, window: Window,
                  slo_ttft_ms: float | None, slo_tpot_ms: float | None) -> dict[str, float]:
    """The SUMMED run figures over the window's requests (rates per second of the window)."""
    span = window.end_s - window.start_s
    ok = pl.lit(True)
    if slo_ttft_ms is not None:
        ok &= pl.col("ttft_s") * 1e3 <= slo_ttft_ms
    if slo_tpot_ms is not None:
        ok &= pl.col("tpot_s").fill_null(0.0) * 1e3 <= slo_tpot_ms
    tot = {k: float(req[k].sum()) for k in ("prompt_blocks", "hit_hbm_blocks",
                                            "hit_dram_blocks", "hit_ssd_blocks")}
    return tot | {"requests": float(req.height), "goodput_req_s": fin.filter(ok).height / span,
                  "throughput_tok_s": float(fin["output_tokens"].sum()) / span,
                  "load_stall_total_s": float(fin["load_stall_s"].sum())}


def verify(pool: PlanExecutor, jobs: list[VerifyJob], wall_s: float,
           percentile: float, slo_ttft_ms: float | None, slo_tpot_ms: float | None,
           progress: Callable[[int, int], None], window: Window | None = None
           ) -> tuple[pl.DataFrame, pl.DataFrame, dict[int, pl.DataFrame], WorkerFigures]:
    """Simulate every job; returns (pooled figures per candidate, per-request rows of every
    run with candidate_id and replica, time series per candidate with a replica column, what
    the runs cost in their workers)."""
    if not jobs:
        return pl.DataFrame(), pl.DataFrame(), {}, worker_figures([])
    out = _run_all(pool, jobs, wall_s, progress)
    ids = sorted({j.candidate_id for j in jobs})
    by_id = {c: sorted((o for o in out if o.candidate_id == c), key=lambda o: o.replica)
             for c in ids}
    rows = pl.DataFrame([summarise(c, by_id[c], percentile, window, slo_ttft_ms, slo_tpot_ms)
                         for c in ids],
                        schema_overrides={"sim_stop_reason": pl.String}, infer_schema_length=None)
    rows = rows.with_columns(_sim_feasible(rows, slo_ttft_ms, slo_tpot_ms).alias("sim_feasible"))
    reqs = [o.requests for o in sorted(out, key=lambda o: (o.candidate_id, o.replica))
            if o.requests.height]
    series = {c: pl.concat([o.timeseries for o in runs if o.timeseries.height],
                           how="diagonal_relaxed") if any(o.timeseries.height for o in runs)
              else pl.DataFrame() for c, runs in by_id.items()}
    reqs_df = pl.concat(reqs, how="diagonal_relaxed") if reqs else pl.DataFrame()
    return rows, reqs_df, series, worker_figures(out)


def _run_all(pool: PlanExecutor, jobs: list[VerifyJob], wall_s: float,
             progress: Callable[[int, int], None]) -> list[RunOutput]:
    out: list[RunOutput] = []
    cap_s = (wall_s * 1.5 + 10) * -(-len(jobs) // pool.workers)
    longest_first = sorted(jobs, key=lambda j: -j.requests)  # shorter tail
    progress(0, len(jobs))
    try:
        for o in pool.run(simulate, [(j,) for j in longest_first], cap_s):
            out.append(_outcome(o, longest_first[o.index]))
            progress(len(out), len(jobs))
    except TimeoutError:
        done = {(o.candidate_id, o.replica) for o in out}
        out += [_failed(j, "timed out") for j in jobs if (j.candidate_id, j.replica) not in done]
    return out


def _outcome(o: Outcome, job: VerifyJob) -> RunOutput:
    if o.error is None:
        return o.value
    if isinstance(o.error, KvplanError):
        return _failed(job, f"error: {o.error}")
    raise o.error


def _failed(job: VerifyJob, status: str) -> RunOutput:
    return RunOutput(job.candidate_id, job.replica, status, None, pl.DataFrame(), pl.DataFrame())


def _sim_feasible(rows: pl.DataFrame, ttft_ms: float | None, tpot_ms: float | None) -> pl.Expr:
    ok = pl.col("sim_finished_frac").fill_null(0.0) >= 1.0
    if ttft_ms is not None:
        ok &= pl.col("sim_ttft_pq_ms").fill_null(float("inf")) <= ttft_ms
    if tpot_ms is not None:
        ok &= pl.col("sim_tpot_ms").fill_null(0.0) <= tpot_ms
    return ok
