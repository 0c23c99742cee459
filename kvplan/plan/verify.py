"""Stage 2: re-run chosen candidates in the event simulator, in parallel processes.

A candidate of R replicas is R event replays, one per replica's routed requests
(kvplan.plan.routing), all submitted to one pool; its simulated figures pool every replica's
requests (percentiles over all of them, hits over all prompt blocks, goodput summed).

The pool is started (spawn) before the analytic screen, so worker start-up and imports
overlap it (:func:`verification_pool`). Each run has a wall-time cap
(``ReplayConfig.max_wall_s``, enforced by the simulator; runs still going after 1.5 x the cap
+ 10 s per round of ``processes`` runs are reported as timed out). The simulated figures sit
beside the analytic ones so the screen's error is visible (docs/plan.md, "verified" columns).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, TimeoutError, as_completed
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.errors import KvplanError
from kvplan.hierarchy import Tier
from kvplan.sim.config import ReplayConfig
from kvplan.sim.results import RunSummary
from kvplan.workload import Workload

SIM_COLUMNS = ("candidate_id", "sim_finished_frac", "sim_ttft_p50_ms", "sim_ttft_pq_ms",
               "sim_tpot_ms", "sim_hit_ratio_hbm", "sim_hit_ratio_dram", "sim_hit_ratio_ssd",
               "sim_goodput_rps", "sim_throughput_tok_s", "sim_load_stall_mean_ms",
               "sim_stop_reason")
"""Columns of the verified table besides the analytic ones (docs/plan.md)."""


@dataclass(frozen=True)
class VerifyJob:
    """One replica of one candidate to simulate."""

    candidate_id: int
    replica: int
    """0-based replica index."""
    workload: Workload
    """The requests routed to this replica."""
    config: ReplayConfig


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


def _warm_up() -> None:
    """Import the simulator in a fresh worker (runs while the parent screens)."""
    import kvplan.sim.replay  # noqa: F401


@contextmanager
def verification_pool(processes: int, enabled: bool = True) -> Iterator[Executor | None]:
    """A spawn process pool with every worker already starting up; None when not ``enabled``."""
    if not enabled:
        yield None
        return
    ctx = multiprocessing.get_context("spawn")  # fork deadlocks polars' thread pool
    pool = ProcessPoolExecutor(max_workers=max(1, processes), mp_context=ctx)
    try:
        for _ in range(max(1, processes)):
            pool.submit(_warm_up)
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def simulate(job: VerifyJob) -> RunOutput:
    """Run one event replay (in a worker)."""
    from kvplan.sim.replay import run_replay

    res = run_replay(job.workload, job.config)
    req = res.requests.with_columns(pl.lit(job.candidate_id).alias("candidate_id"),
                                    pl.lit(job.replica).alias("replica"))
    ts = res.timeseries.with_columns(pl.lit(job.replica).alias("replica"))
    return RunOutput(job.candidate_id, job.replica, "ok", res.run, req, ts)


def summarise(candidate_id: int, runs: list[RunOutput], percentile: float) -> dict:
    """Pooled simulated figures of one candidate's replicas at the SLO percentile."""
    failed = [r.status for r in runs if r.status != "ok"]
    if failed:
        return dict.fromkeys(SIM_COLUMNS) | {"candidate_id": candidate_id,
                                             "sim_finished_frac": 0.0,
                                             "sim_stop_reason": failed[0]}
    req = pl.concat([r.requests for r in runs], how="diagonal_relaxed")
    fin = req.filter(pl.col("finished")) if "finished" in req.columns else req
    ttft = fin["ttft_s"].drop_nulls().to_numpy()
    tpot = fin["tpot_s"].drop_nulls().to_numpy()
    sums = [r.run for r in runs if r.run is not None]
    timings = [s.timing for s in sums if s.timing is not None]
    blocks = max(sum(s.prompt_blocks for s in sums), 1)
    hits = [sum(s.tier(t).hit_blocks for s in sums) / blocks for t in Tier]
    requests = max(sum(s.requests for s in sums), 1)
    reasons = sorted({t.stop_reason for t in timings})
    return {
        "candidate_id": candidate_id,
        "sim_finished_frac": fin.height / max(req.height, 1),
        "sim_ttft_p50_ms": float(np.quantile(ttft, 0.5)) * 1e3 if ttft.size else None,
        "sim_ttft_pq_ms": float(np.quantile(ttft, percentile / 100)) * 1e3 if ttft.size else None,
        "sim_tpot_ms": float(tpot.mean()) * 1e3 if tpot.size else None,
        "sim_hit_ratio_hbm": hits[Tier.HBM],
        "sim_hit_ratio_dram": hits[Tier.DRAM],
        "sim_hit_ratio_ssd": hits[Tier.SSD],
        "sim_goodput_rps": sum(t.goodput_req_s for t in timings),
        "sim_throughput_tok_s": sum(t.throughput_tok_s for t in timings),
        "sim_load_stall_mean_ms": sum(t.load_stall_total_s for t in timings) / requests * 1e3,
        "sim_stop_reason": ", ".join(reasons),
    }


def verify(pool: Executor, jobs: list[VerifyJob], processes: int, wall_s: float,
           percentile: float, slo_ttft_ms: float | None, slo_tpot_ms: float | None,
           progress: Callable[[int, int], None]
           ) -> tuple[pl.DataFrame, pl.DataFrame, dict[int, pl.DataFrame]]:
    """Simulate every job; returns (pooled figures per candidate, per-request rows of every
    run with candidate_id and replica, time series per candidate with a replica column)."""
    if not jobs:
        return pl.DataFrame(), pl.DataFrame(), {}
    out = _run_all(pool, jobs, processes, wall_s, progress)
    ids = sorted({j.candidate_id for j in jobs})
    by_id = {c: sorted((o for o in out if o.candidate_id == c), key=lambda o: o.replica)
             for c in ids}
    rows = pl.DataFrame([summarise(c, by_id[c], percentile) for c in ids],
                        schema_overrides={"sim_stop_reason": pl.String}, infer_schema_length=None)
    rows = rows.with_columns(_sim_feasible(rows, slo_ttft_ms, slo_tpot_ms).alias("sim_feasible"))
    reqs = [o.requests for o in sorted(out, key=lambda o: (o.candidate_id, o.replica))
            if o.requests.height]
    series = {c: pl.concat([o.timeseries for o in runs if o.timeseries.height],
                           how="diagonal_relaxed") if any(o.timeseries.height for o in runs)
              else pl.DataFrame() for c, runs in by_id.items()}
    return rows, pl.concat(reqs, how="diagonal_relaxed") if reqs else pl.DataFrame(), series


def _run_all(pool: Executor, jobs: list[VerifyJob], processes: int, wall_s: float,
             progress: Callable[[int, int], None]) -> list[RunOutput]:
    out: list[RunOutput] = []
    cap_s = (wall_s * 1.5 + 10) * -(-len(jobs) // max(1, processes))
    longest_first = sorted(jobs, key=lambda j: -j.workload.num_requests)  # shorter tail
    futs = {pool.submit(simulate, j): j for j in longest_first}
    progress(0, len(jobs))
    try:
        for fut in as_completed(futs, timeout=cap_s):
            out.append(_outcome(fut, futs[fut]))
            progress(len(out), len(jobs))
    except TimeoutError:
        done = {(o.candidate_id, o.replica) for o in out}
        out += [_failed(j, "timed out") for j in jobs if (j.candidate_id, j.replica) not in done]
    return out


def _outcome(fut, job: VerifyJob) -> RunOutput:
    try:
        return fut.result()
    except KvplanError as exc:
        return _failed(job, f"error: {exc}")


def _failed(job: VerifyJob, status: str) -> RunOutput:
    return RunOutput(job.candidate_id, job.replica, status, None, pl.DataFrame(), pl.DataFrame())


def _sim_feasible(rows: pl.DataFrame, ttft_ms: float | None, tpot_ms: float | None) -> pl.Expr:
    ok = pl.col("sim_finished_frac").fill_null(0.0) >= 1.0
    if ttft_ms is not None:
        ok &= pl.col("sim_ttft_pq_ms").fill_null(float("inf")) <= ttft_ms
    if tpot_ms is not None:
        ok &= pl.col("sim_tpot_ms").fill_null(0.0) <= tpot_ms
    return ok
