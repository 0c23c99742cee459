"""Real-vs-simulated metrics: one summary function for both sides, errors, per-request table.

Definitions (docs/validate.md, the same as docs/metrics.md): TTFT = first token - arrival;
TPOT = (last token - first token) / (output_tokens - 1), first token excluded, over requests
with more than one output token; e2e = last token - arrival; percentiles by linear
interpolation; makespan = last finish - first arrival; throughput = requests / makespan.
Errors are signed fractions of the real value: (sim - real) / real.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.sim.metrics import percentiles_ms

LATENCIES = ("ttft", "tpot", "e2e")
METRICS = tuple(f"{m}_{s}_ms" for m in LATENCIES for s in ("mean", "p50", "p90", "p99")) + (
    "makespan_s", "throughput_rps")
"""Metric names, in table order."""
HEADLINE = ("ttft_mean_ms", "tpot_mean_ms", "e2e_mean_ms")
"""The metrics the verdict judges against the tolerance."""


@dataclass(frozen=True)
class MetricRow:
    """One metric, real vs simulated."""

    metric: str
    real: float | None
    sim: float | None
    error_frac: float | None
    """(sim - real) / real; None when either side is missing or real is 0."""


@dataclass(frozen=True)
class PerRequestErrors:
    """Request-by-request agreement over the requests finished on both sides."""

    requests_compared: int
    unfinished_in_sim: int
    """Requests the simulation did not finish (left out of every simulated figure)."""
    ttft_median_abs_error_frac: float | None
    tpot_median_abs_error_frac: float | None
    e2e_median_abs_error_frac: float | None


@dataclass(frozen=True)
class Comparison:
    metrics: tuple[MetricRow, ...]
    per_request: PerRequestErrors

    def row(self, metric: str) -> MetricRow:
        return next(r for r in self.metrics if r.metric == metric)

    def outside(self, tolerance: float) -> list[str]:
        """Headline metrics whose |error| exceeds ``tolerance`` (or cannot be computed)."""
        return [m for m in HEADLINE
                if (e := self.row(m).error_frac) is None or abs(e) > tolerance]


def summarize(frame: pl.DataFrame) -> dict[str, float | None]:
    """:data:`METRICS` of finished requests (columns arrival_s, ttft_s, tpot_s, e2e_s)."""
    out: dict[str, float | None] = {}
    for m in LATENCIES:
        s = frame[f"{m}_s"].drop_nulls()
        out[f"{m}_mean_ms"] = float(s.mean()) * 1e3 if len(s) else None
        p = percentiles_ms(s)
        out |= {f"{m}_p50_ms": p.p50_ms, f"{m}_p90_ms": p.p90_ms, f"{m}_p99_ms": p.p99_ms}
    if frame.height:
        start = float(frame["arrival_s"].min())
        makespan = float((frame["arrival_s"] + frame["e2e_s"]).max()) - start
        out["makespan_s"] = makespan
        out["throughput_rps"] = frame.height / makespan if makespan > 0 else None
    else:
        out["makespan_s"] = out["throughput_rps"] = None
    return {m: out[m] for m in METRICS}


def error_frac(real: float | None, sim: float | None) -> float | None:
    if real is None or sim is None or real == 0:
        return None
    return (sim - real) / real


def per_request_frame(real: pl.DataFrame, sim: pl.DataFrame) -> pl.DataFrame:
    """One row per real request: measured and simulated latencies (ms) and signed errors.

    ``real``: the run's measured table; ``sim``: the replay's per-request table (request_id,
    ttft_s, tpot_s, e2e_s, finished, preemptions), same request ids.
    """
    sim_cols = sim.select("request_id", pl.col("finished").alias("sim_finished"),
                          pl.col("preemptions").alias("sim_preemptions"),
                          *[pl.col(f"{m}_s").alias(f"sim_{m}_s") for m in LATENCIES])
    df = real.join(sim_cols, on="request_id", how="left")
    return df.select(
        "request_id", "source_id", "arrival_s", "input_tokens", "output_tokens",
        *[expr for m in LATENCIES for expr in (
            (pl.col(f"{m}_s") * 1e3).alias(f"real_{m}_ms"),
            (pl.col(f"sim_{m}_s") * 1e3).alias(f"sim_{m}_ms"),
            ((pl.col(f"sim_{m}_s") - pl.col(f"{m}_s")) / pl.col(f"{m}_s"))
            .alias(f"{m}_error_frac"))],
        pl.col("sim_finished").fill_null(False), "sim_preemptions",
    )


def compare(per_request: pl.DataFrame) -> Comparison:
    """Summary metrics of both sides and per-request median absolute errors."""
    real = summarize(_side(per_request, "real"))
    finished = per_request.filter(pl.col("sim_finished"))
    sim = summarize(_side(finished, "sim"))
    rows = tuple(MetricRow(m, real[m], sim[m], error_frac(real[m], sim[m])) for m in METRICS)
    medians = {m: _median_abs(finished[f"{m}_error_frac"]) for m in LATENCIES}
    return Comparison(rows, PerRequestErrors(
        requests_compared=finished.height,
        unfinished_in_sim=per_request.height - finished.height,
        ttft_median_abs_error_frac=medians["ttft"], tpot_median_abs_error_frac=medians["tpot"],
        e2e_median_abs_error_frac=medians["e2e"]))


def _side(df: pl.DataFrame, side: str) -> pl.DataFrame:
    """The ``real_*`` or ``sim_*`` latencies of ``df`` under summarize()'s column names."""
    return df.select("arrival_s", *[(pl.col(f"{side}_{m}_ms") / 1e3).alias(f"{m}_s")
                                    for m in LATENCIES])


def _median_abs(s: pl.Series) -> float | None:
    v = s.drop_nulls().drop_nans().abs()
    return float(np.median(v.to_numpy())) if len(v) else None
