"""ReplayResult: what one replay produces, in either mode (columns in docs/metrics.md).

The run summary is typed: a figure is read as an attribute (``result.run.timing.finished``,
``result.run.tier(Tier.DRAM).hit_blocks``), so a renamed figure fails where it is read.
``RunSummary.as_row`` flattens it to the run.parquet columns of docs/metrics.md::

    run.tier(Tier.HBM).hit_ratio_blocks  ->  row["hit_ratio_hbm_blocks"]
    run.link(Link.H2D).bytes             ->  row["h2d_bytes"]
    run.timing.ttft.p99_ms               ->  row["ttft_p99_ms"]     (event mode only)
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from kvplan.hierarchy import Link, Tier
from kvplan.sim.config import ReplayConfig

Value = float | int | str | None
"""A run.parquet cell."""


@dataclass(frozen=True)
class TierFigures:
    """One tier's capacity, peak occupancy and prefix hits."""

    capacity_blocks: int
    """0: the tier is absent."""
    peak_blocks: int
    """Most blocks resident at once (HBM: cached + private)."""
    peak_gib: float
    hit_blocks: int
    """Prompt blocks found in this tier at first admission (finished requests)."""
    hit_ratio_blocks: float
    """hit_blocks / prompt_blocks."""
    hit_ratio_tokens: float
    """hit_blocks x block_size / prompt_tokens."""


@dataclass(frozen=True)
class LinkFigures:
    """What crossed one link."""

    bytes: int
    util: float | None
    """Busy time / simulated duration (event mode; None in cache mode, which has no clock)."""


@dataclass(frozen=True)
class Percentiles:
    """p50 / p90 / p99 in milliseconds (None when no request has the figure)."""

    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Extrapolation:
    """Predictions outside a calibrated profile's measured ranges (kvplan.sim.coverage)."""

    text: str
    """'' when every prediction was inside; else one clause per curve left."""
    steps: int
    transfers: int


@dataclass(frozen=True)
class Timing:
    """The figures only event mode has: time, throughput, latency, stalls."""

    stop_reason: str
    finished: int
    sim_duration_s: float
    throughput_req_s: float
    throughput_tok_s: float
    prefill_tok_s: float
    goodput_req_s: float
    slo_attained_frac: float
    ttft: Percentiles
    tpot: Percentiles
    e2e: Percentiles
    queue_delay_mean_s: float | None
    load_stall_total_s: float
    load_stall_mean_s: float | None
    preemptions: int
    ssd_drive_writes_per_day: float
    extrapolated: Extrapolation
    staged_used_bytes: int = 0
    """Bytes prefetch staging copied into HBM for requests then admitted."""
    staged_unused_bytes: int = 0
    """Bytes prefetch staging copied into HBM but never used (a stage dropped at its TTL)."""


@dataclass(frozen=True)
class RunSummary:
    """One run's summary (docs/metrics.md, run.parquet)."""

    mode: str
    """event or cache."""
    bound: str
    """'' for an online configuration; else which oracle makes the figures a bound."""
    requests: int
    prompt_blocks: int
    """Full prompt blocks of the finished requests: the hit-ratio denominator."""
    prompt_tokens: int
    recomputed_tokens: int
    tiers: tuple[TierFigures, TierFigures, TierFigures]
    """kvplan.hierarchy.Tier order."""
    links: tuple[LinkFigures, LinkFigures, LinkFigures, LinkFigures]
    """kvplan.hierarchy.Link order."""
    timing: Timing | None = None
    """Event mode only."""

    def tier(self, t: Tier) -> TierFigures:
        return self.tiers[t]

    def link(self, link: Link) -> LinkFigures:
        return self.links[link]

    @property
    def ssd_bytes_written(self) -> int:
        return self.links[Link.SSD_WRITE].bytes

    @property
    def finished(self) -> int:
        """Finished requests (cache mode: every request)."""
        return self.timing.finished if self.timing else self.requests

    def as_row(self) -> dict[str, Value]:
        """The run.parquet row: docs/metrics.md's columns in its order (event-only ones
        absent in cache mode)."""
        row: dict[str, Value] = {"mode": self.mode, "bound": self.bound}
        tm = self.timing
        if tm:
            row |= {"stop_reason": tm.stop_reason, "requests": self.requests,
                    "finished": tm.finished, "sim_duration_s": tm.sim_duration_s,
                    "throughput_req_s": tm.throughput_req_s,
                    "throughput_tok_s": tm.throughput_tok_s, "prefill_tok_s": tm.prefill_tok_s,
                    "goodput_req_s": tm.goodput_req_s,
                    "slo_attained_frac": tm.slo_attained_frac}
            for name, p in (("ttft", tm.ttft), ("tpot", tm.tpot), ("e2e", tm.e2e)):
                row |= {f"{name}_p50_ms": p.p50_ms, f"{name}_p90_ms": p.p90_ms,
                        f"{name}_p99_ms": p.p99_ms}
            row |= {"queue_delay_mean_s": tm.queue_delay_mean_s,
                    "load_stall_total_s": tm.load_stall_total_s,
                    "load_stall_mean_s": tm.load_stall_mean_s, "preemptions": tm.preemptions,
                    "staged_used_bytes": tm.staged_used_bytes,
                    "staged_unused_bytes": tm.staged_unused_bytes}
        else:
            row["requests"] = self.requests
        row |= {"recomputed_tokens": self.recomputed_tokens,
                "prompt_blocks": self.prompt_blocks, "prompt_tokens": self.prompt_tokens}
        for t in Tier:
            fig = self.tiers[t]
            row |= {f"hit_{t.label}_blocks": fig.hit_blocks,
                    f"hit_ratio_{t.label}_blocks": fig.hit_ratio_blocks,
                    f"hit_ratio_{t.label}_tokens": fig.hit_ratio_tokens}
        for t in Tier:
            fig = self.tiers[t]
            row |= {f"{t.label}_capacity_blocks": fig.capacity_blocks,
                    f"{t.label}_peak_blocks": fig.peak_blocks,
                    f"{t.label}_peak_gib": fig.peak_gib}
        for link in Link:
            row[f"{link.label}_bytes"] = self.links[link].bytes
            if tm:
                row[f"{link.label}_util"] = self.links[link].util
        row["ssd_bytes_written"] = self.ssd_bytes_written
        if tm:
            row |= {"ssd_drive_writes_per_day": tm.ssd_drive_writes_per_day,
                    "extrapolated": tm.extrapolated.text,
                    "extrapolated_steps": tm.extrapolated.steps,
                    "extrapolated_transfers": tm.extrapolated.transfers}
        return row


@dataclass(frozen=True)
class ReplayResult:
    """Per-request rows, one run summary and a per-second time series."""

    config: ReplayConfig
    requests: pl.DataFrame
    """One row per request (cache mode: hits per tier and bytes only, no timing)."""
    run: RunSummary
    timeseries: pl.DataFrame
    """Per simulated second: occupancy per tier, link utilization, running/waiting (event mode)."""
