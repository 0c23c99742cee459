"""Stage 2: re-run chosen candidates in the event simulator, in parallel processes.

Each run has a wall-time cap (``ReplayConfig.max_wall_s``, enforced by the simulator; a run
that still overruns by 50 % + 10 s is reported as timed out). The simulated figures sit beside
the analytic ones so the screen's error is visible (docs/plan.md, "verified" columns).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, TimeoutError, as_completed
from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.errors import KvplanError
from kvplan.sim.config import ReplayConfig
from kvplan.workload import Workload

SIM_COLUMNS = ("candidate_id", "sim_finished_frac", "sim_ttft_p50_ms", "sim_ttft_pq_ms",
               "sim_tpot_ms", "sim_hit_ratio_hbm", "sim_hit_ratio_dram", "sim_hit_ratio_ssd",
               "sim_goodput_rps", "sim_throughput_tok_s", "sim_load_stall_mean_ms",
               "sim_stop_reason")
"""Columns of the verified table besides the analytic ones (docs/plan.md)."""


@dataclass(frozen=True)
class VerifyJob:
    """One candidate to simulate."""

    candidate_id: int
    config: ReplayConfig


@dataclass(frozen=True)
class SimFigures:
    """What the plan reads from one event replay."""

    candidate_id: int
    status: str
    """ok, timed out, or the error raised."""
    row: dict
    requests: pl.DataFrame
    timeseries: pl.DataFrame


def simulate(workload: Workload, job: VerifyJob, percentile: float) -> SimFigures:
    """Run one event replay and summarise it at the SLO percentile."""
    from kvplan.sim.replay import run_replay

    res = run_replay(workload, job.config)
    req = res.requests
    fin = req.filter(pl.col("finished")) if "finished" in req.columns else req
    ttft = fin["ttft_s"].drop_nulls().to_numpy()
    tpot = fin["tpot_s"].drop_nulls().to_numpy()
    row = {
        "candidate_id": job.candidate_id,
        "sim_finished_frac": fin.height / max(req.height, 1),
        "sim_ttft_p50_ms": float(np.quantile(ttft, 0.5)) * 1e3 if ttft.size else None,
        "sim_ttft_pq_ms": float(np.quantile(ttft, percentile / 100)) * 1e3 if ttft.size else None,
        "sim_tpot_ms": float(tpot.mean()) * 1e3 if tpot.size else None,
        "sim_hit_ratio_hbm": res.run.get("hit_ratio_hbm_blocks"),
        "sim_hit_ratio_dram": res.run.get("hit_ratio_dram_blocks"),
        "sim_hit_ratio_ssd": res.run.get("hit_ratio_ssd_blocks"),
        "sim_goodput_rps": res.run.get("goodput_req_s"),
        "sim_throughput_tok_s": res.run.get("throughput_tok_s"),
        "sim_load_stall_mean_ms": _ms(res.run.get("load_stall_mean_s")),
        "sim_stop_reason": str(res.run.get("stop_reason", "")),
    }
    return SimFigures(job.candidate_id, "ok", row, req.with_columns(
        pl.lit(job.candidate_id).alias("candidate_id")), res.timeseries)


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1e3


def verify(workload: Workload, jobs: list[VerifyJob], processes: int, wall_s: float,
           percentile: float, slo_ttft_ms: float | None, slo_tpot_ms: float | None,
           progress: Callable[[int, int], None]
           ) -> tuple[pl.DataFrame, pl.DataFrame, dict[int, pl.DataFrame]]:
    """Simulate every job; returns (figures per candidate, per-request rows, time series)."""
    if not jobs:
        return pl.DataFrame(), pl.DataFrame(), {}
    out: list[SimFigures] = []
    ctx = multiprocessing.get_context("spawn")  # fork deadlocks polars' thread pool
    cap_s = (wall_s * 1.5 + 10) * -(-len(jobs) // max(1, processes))
    with ProcessPoolExecutor(max_workers=max(1, processes), mp_context=ctx) as pool:
        futs = {pool.submit(simulate, workload, j, percentile): j for j in jobs}
        progress(0, len(jobs))
        try:
            for fut in as_completed(futs, timeout=cap_s):
                out.append(_outcome(fut, futs[fut]))
                progress(len(out), len(jobs))
        except TimeoutError:
            done = {s.candidate_id for s in out}
            out += [_failed(j, "timed out") for j in jobs if j.candidate_id not in done]
            pool.shutdown(wait=False, cancel_futures=True)
    out.sort(key=lambda s: s.candidate_id)
    rows = pl.DataFrame([s.row for s in out], schema_overrides={"sim_stop_reason": pl.String},
                        infer_schema_length=None)
    rows = rows.with_columns(_sim_feasible(rows, slo_ttft_ms, slo_tpot_ms).alias("sim_feasible"))
    reqs = [s.requests for s in out if s.requests.height]
    return rows, pl.concat(reqs, how="diagonal_relaxed") if reqs else pl.DataFrame(), {
        s.candidate_id: s.timeseries for s in out}


def _outcome(fut, job: VerifyJob) -> SimFigures:
    try:
        return fut.result()
    except KvplanError as exc:
        return _failed(job, f"error: {exc}")


def _failed(job: VerifyJob, status: str) -> SimFigures:
    row = dict.fromkeys(SIM_COLUMNS) | {"candidate_id": job.candidate_id, "sim_finished_frac":
                                        0.0, "sim_stop_reason": status}
    return SimFigures(job.candidate_id, status, row, pl.DataFrame(), pl.DataFrame())


def _sim_feasible(rows: pl.DataFrame, ttft_ms: float | None, tpot_ms: float | None) -> pl.Expr:
    ok = pl.col("sim_finished_frac").fill_null(0.0) >= 1.0
    if ttft_ms is not None:
        ok &= pl.col("sim_ttft_pq_ms").fill_null(float("inf")) <= ttft_ms
    if tpot_ms is not None:
        ok &= pl.col("sim_tpot_ms").fill_null(0.0) <= tpot_ms
    return ok
