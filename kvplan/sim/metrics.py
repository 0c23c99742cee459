"""Event-mode metrics: per-request rows, the run summary and the per-second time series.

Every column is defined in docs/metrics.md. Collectors append plain values while the run goes;
polars aggregates at the end. Conventions: TTFT = first token time - arrival (queueing and load
stall included); TPOT = (finish - first token) / (output_tokens - 1), the first token excluded
(null for one-token outputs); hit ratios are over the prompt's full blocks at first admission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import polars as pl

from kvplan.hierarchy import LINK_LABELS, TIER_LABELS, Link, Tier
from kvplan.sim.config import ReplayConfig
from kvplan.sim.policies import eviction_policy
from kvplan.sim.prefetch import prefetch_class
from kvplan.sim.request import Req
from kvplan.sim.results import (
    Extrapolation,
    LinkFigures,
    Percentiles,
    ReplayResult,
    RunSummary,
    TierFigures,
    Timing,
)
from kvplan.sim.transfers import BusyTimeline
from kvplan.units import GIB
from kvplan.workload import Workload
from kvplan.workload.validate import block_hash_lists

_REQ_FLOAT = ("first_admit_s", "first_token_s", "finish_s", "load_stall_s")
_REQ_INT = ("hit_hbm_blocks", "hit_dram_blocks", "hit_ssd_blocks", "prefill_tokens",
            "recomputed_tokens", "readmit_hit_tokens", "preemptions")


class Snapshot(NamedTuple):
    """What the time series records each second: occupancy and queue lengths."""

    hbm_used_blocks: int
    dram_used_blocks: int
    ssd_used_blocks: int
    running: int
    waiting: int
    parked: int


@dataclass(frozen=True)
class RunState:
    """What the run summary needs from the simulator at the end, besides the requests."""

    stop_reason: str
    block_bytes: int
    capacity_blocks: tuple[int, int, int]
    peak_blocks: tuple[int, int, int]
    """Most blocks resident in each tier (HBM: resident + private)."""
    link_bytes: tuple[int, int, int, int]
    """kvplan.hierarchy.Link order."""
    link_busy_s: tuple[float, float, float, float]
    extrapolated: Extrapolation
    """kvplan.sim.coverage.summary."""
    staged_used_bytes: int = 0
    """Bytes prefetch staging copied into HBM for requests that were then admitted."""
    staged_unused_bytes: int = 0
    """Bytes prefetch staging copied into HBM and dropped unused (kvplan.sim.prefetch)."""


class Collector:
    """Per-request arrays filled at finish, per-second samples and link busy time. It reads
    requests as they finish and the snapshots it is given; it changes nothing else."""

    def __init__(self, workload: Workload, config: ReplayConfig, planned_arrival_s: np.ndarray
                 ) -> None:
        self.workload, self.config = workload, config
        n = len(planned_arrival_s)
        self.arrival_s = np.array(planned_arrival_s, dtype=np.float64)
        """Arrival of each request: set when it arrives (closed loop: its release); before,
        its trace time if known (NaN, null in the table, for a turn never released)."""
        self.floats = {c: np.full(n, np.nan) for c in _REQ_FLOAT}
        self.ints = {c: np.zeros(n, np.int64) for c in _REQ_INT}
        self.done = np.zeros(n, bool)
        self.finished = 0
        self.timeline = BusyTimeline(len(Link))
        self.samples: list[tuple[int, ...]] = []
        self.next_sec = 0

    def finish(self, req: Req, now: float) -> None:
        i, f, k = req.idx, self.floats, self.ints
        f["first_admit_s"][i], f["first_token_s"][i] = req.first_admit_s, req.first_token_s
        f["finish_s"][i], f["load_stall_s"][i] = now, req.load_stall_s
        k["hit_hbm_blocks"][i], k["hit_dram_blocks"][i], k["hit_ssd_blocks"][i] = req.hit_blocks
        k["prefill_tokens"][i], k["recomputed_tokens"][i] = req.prefill_tokens, \
            req.recomputed_tokens
        k["readmit_hit_tokens"][i], k["preemptions"][i] = req.readmit_hit_tokens, req.preemptions
        self.done[i] = True
        self.finished += 1

    def sample_until(self, t: float, row: Snapshot) -> None:
        """Record ``row`` (the state, constant since the last event) at every whole second
        from the last sample to ``t``."""
        last = int(t)
        self.samples.extend((s, *row) for s in range(self.next_sec, last + 1))
        self.next_sec = max(self.next_sec, last + 1)

    def result(self, state: RunState) -> ReplayResult:
        requests = self._requests()
        return ReplayResult(config=self.config, requests=requests,
                            run=self._run(state, requests), timeseries=self._timeseries())

    def _requests(self) -> pl.DataFrame:
        t = self.workload.table
        bs = self.workload.block_size
        df = pl.DataFrame({
            "request_id": t.column("request_id").to_numpy(),
            "session_id": t.column("session_id").to_numpy(),
            "arrival_s": pl.Series("arrival_s", self.arrival_s, nan_to_null=True),
            "input_tokens": t.column("input_tokens").to_numpy(),
            "output_tokens": t.column("output_tokens").to_numpy(),
            "prompt_blocks": np.diff(np.asarray(block_hash_lists(t).offsets)).astype(np.int64),
            "finished": self.done,
            **{c: pl.Series(c, v, nan_to_null=True) for c, v in self.floats.items()},
            **self.ints,
        })
        out = pl.col("output_tokens")
        return df.with_columns(
            (pl.col("first_admit_s") - pl.col("arrival_s")).alias("queue_delay_s"),
            (pl.col("first_token_s") - pl.col("arrival_s")).alias("ttft_s"),
            pl.when(out > 1).then((pl.col("finish_s") - pl.col("first_token_s")) / (out - 1))
            .alias("tpot_s"),
            (pl.col("finish_s") - pl.col("arrival_s")).alias("e2e_s"),
            *[(pl.col(f"hit_{tier}_blocks") * bs).alias(f"hit_{tier}_tokens") for tier in TIER_LABELS],
        )

    def _timeseries(self) -> pl.DataFrame:
        cols = ("t_s", "hbm_used_blocks", "dram_used_blocks", "ssd_used_blocks", "running",
                "waiting", "parked")
        df = pl.DataFrame(self.samples or None, schema=dict.fromkeys(cols, pl.Int64),
                          orient="row")
        secs = df["t_s"].to_numpy()
        return df.with_columns(
            pl.Series(f"{name}_util", np.array([bins.get(int(s), 0.0) for s in secs]))
            for name, bins in zip(LINK_LABELS, self.timeline.busy, strict=True)
        )

    def _run(self, state: RunState, req: pl.DataFrame) -> RunSummary:
        cfg = self.config
        fin = req.filter(pl.col("finished"))
        start = float(req["arrival_s"].min()) if req.height else 0.0
        end = float(fin["finish_s"].max()) if fin.height else start
        duration = max(end - start, 1e-9)
        met = _slo_met(fin, cfg)
        written = state.link_bytes[Link.SSD_WRITE]
        cap_bytes = state.capacity_blocks[Tier.SSD] * state.block_bytes
        timing = Timing(
            stop_reason=state.stop_reason, finished=fin.height, sim_duration_s=duration,
            throughput_req_s=fin.height / duration,
            throughput_tok_s=float(fin["output_tokens"].sum()) / duration,
            prefill_tok_s=float(fin["prefill_tokens"].sum()
                                + fin["recomputed_tokens"].sum()) / duration,
            goodput_req_s=met / duration,
            slo_attained_frac=met / fin.height if fin.height else 0.0,
            ttft=percentiles_ms(fin["ttft_s"]), tpot=percentiles_ms(fin["tpot_s"]),
            e2e=percentiles_ms(fin["e2e_s"]),
            queue_delay_mean_s=mean_or_none(fin["queue_delay_s"]),
            load_stall_total_s=float(fin["load_stall_s"].sum()),
            load_stall_mean_s=mean_or_none(fin["load_stall_s"]),
            preemptions=int(fin["preemptions"].sum()),
            ssd_drive_writes_per_day=(written / cap_bytes * 86_400 / duration if cap_bytes
                                      else 0.0),
            extrapolated=state.extrapolated, staged_used_bytes=state.staged_used_bytes,
            staged_unused_bytes=state.staged_unused_bytes)
        links = tuple(LinkFigures(state.link_bytes[k], state.link_busy_s[k] / duration)
                      for k in Link)
        return summarise(cfg, "event", req.height, fin, self.workload.block_size, state.block_bytes,
                         state.capacity_blocks, state.peak_blocks, links, timing)


def summarise(cfg: ReplayConfig, mode: str, requests: int, fin: pl.DataFrame, block_size: int,
              block_bytes: int, capacity_blocks: tuple[int, int, int],
              peak_blocks: tuple[int, int, int], links: tuple[LinkFigures, ...],
              timing: Timing | None) -> RunSummary:
    """The run summary of either mode: hits per tier over the finished requests' prompts
    (``fin``: hit_{tier}_blocks, prompt_blocks, input_tokens, recomputed_tokens columns)."""
    blocks = int(fin["prompt_blocks"].sum())
    tokens = int(fin["input_tokens"].sum())
    tiers = []
    for t in Tier:
        hit = int(fin[f"hit_{t.label}_blocks"].sum())
        tiers.append(TierFigures(
            capacity_blocks=int(capacity_blocks[t]), peak_blocks=int(peak_blocks[t]),
            peak_gib=int(peak_blocks[t]) * block_bytes / GIB, hit_blocks=hit,
            hit_ratio_blocks=hit / blocks if blocks else 0.0,
            hit_ratio_tokens=hit * block_size / tokens if tokens else 0.0))
    return RunSummary(mode=mode, bound=bound_label(cfg), requests=requests,
                      prompt_blocks=blocks, prompt_tokens=tokens,
                      recomputed_tokens=int(fin["recomputed_tokens"].sum()),
                      tiers=tuple(tiers), links=links, timing=timing)


def bound_label(cfg: ReplayConfig) -> str:
    """'' for an online configuration; else which oracle makes the result a bound."""
    parts = [f"{tier} eviction {name} (offline oracle)"
             for tier, name in zip(TIER_LABELS, cfg.evictions, strict=True)
             if eviction_policy(name).is_oracle]
    if prefetch_class(cfg.prefetch).just_in_time:
        parts.append(f"prefetch {cfg.prefetch} (just-in-time bound)")
    return "; ".join(parts)


def _slo_met(fin: pl.DataFrame, cfg: ReplayConfig) -> int:
    """Finished requests that met every SLO given (all of them when none is)."""
    ok = pl.lit(True)
    if cfg.slo_ttft_ms is not None:
        ok &= pl.col("ttft_s") * 1e3 <= cfg.slo_ttft_ms
    if cfg.slo_tpot_ms is not None:
        ok &= pl.col("tpot_s").fill_null(0.0) * 1e3 <= cfg.slo_tpot_ms
    return fin.filter(ok).height


def percentiles_ms(s: pl.Series) -> Percentiles:
    """p50/p90/p99 in milliseconds (linear interpolation; None when no value)."""
    s = s.drop_nulls()
    p50, p90, p99 = (float(s.quantile(q / 100, "linear")) * 1e3 if len(s) else None
                     for q in (50, 90, 99))
    return Percentiles(p50, p90, p99)


def mean_or_none(s: pl.Series) -> float | None:
    v = s.mean()
    return None if v is None else float(v)
