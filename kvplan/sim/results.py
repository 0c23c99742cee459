"""ReplayResult: what one replay produces, in either mode (columns in docs/metrics.md)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from kvplan.sim.config import ReplayConfig


@dataclass(frozen=True)
class ReplayResult:
    """Per-request rows, one run summary and a per-second time series."""

    config: ReplayConfig
    requests: pl.DataFrame
    """One row per request (cache mode: hits per tier and bytes only, no timing)."""
    run: dict[str, float | int | str]
    """One-row summary: throughput, goodput, percentiles, hit ratios, link bytes..."""
    timeseries: pl.DataFrame
    """Per simulated second: occupancy per tier, link utilization, running/waiting (event mode)."""
