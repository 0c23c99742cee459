"""Stage 1, the analytic screen: every candidate's hits, link bytes, stalls, TTFT and throughput.

Per request r and candidate c (block counts from the hit-ratio curves, kvplan.plan.curves)::

    h_hbm, h_dram, h_ssd   prefix blocks served by each tier (prefix distance < threshold)
    recompute  = max(1, input - (h_hbm + h_dram + h_ssd) x block)        tokens of prefill
    prefill_s  = CostModel.step_time_s(recompute, attn_pairs(recompute, hit tokens), 0, 0)
    stall_s    = t_h2d((h_dram + h_ssd) x block bytes) + t_ssd_read(h_ssd x block bytes)
    writes     = computed blocks to DRAM (d2h) and SSD (ssd_write) when the tier exists

Queueing, per replica, on the trace's own arrival times a_i of the requests routed to it
(kvplan.plan.routing); lam = requests / the whole trace's span:

    rho_p  = lam x E[prefill_s]                     GPU share of prefill
    B      = lam x E[output] x tpot                  decoding sequences (Little): with
                                                     step(B) ~ a + b B, B = k a / (1 - k b),
                                                     k = lam E[output] / (1 - rho_p)
    tpot   = step(B decodes of the mean context) / (1 - rho_p)
    rho_d  = lam x E[output] x b                     GPU share of decode, b = marginal step
                                                     time of one more decoding sequence
    S_i    = prefill_s_i / (1 - rho_d)               a prefill stretched by interleaved decodes
    W_i    = max(0, W_{i-1} + S_{i-1} - (a_i - a_{i-1}))      FCFS wait (Lindley), W_0 = 0
    TTFT_i = W_i + stall_i + S_i                     percentiles taken over the requests

Chunked prefill under a token budget serves prompt tokens first come, first served (running
requests' chunks first, then admissions), so a prompt's first token comes once all earlier
prompts' work and its own is done: the FCFS single server of :func:`fcfs_waits`, fed with
the trace's real arrivals. Load stalls overlap other requests' compute, so they add to the
request's TTFT but not to the server's busy time. (An M/G/1 wait at the mean rate, used
before, was 2-3x too high at the 3-replica default recommendation and too low on bursty
replicas, and summing a wait quantile and a service quantile stacked percentiles: screen
TTFT p90 was off by 152 % mean over the default plan's verified candidates.)

A link or the GPU at utilization >= 1 saturates the candidate. The same arithmetic with the
arrival times halved answers "what happens with twice the load". Replicas combine as one
system (:func:`combine_loads`): the busiest replica's utilization (it saturates first, so the
sustainable total rate is total rate / its peak utilization), TTFT percentiles and goodput
over every replica's requests pooled, and the request-weighted mean TPOT. The event
simulator (stage 2) decides; this screen only ranks, and stage 2 reports its error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numba import njit

from kvplan.cost.model import CostModel, attn_pairs
from kvplan.hierarchy import LINK_LABELS
from kvplan.plan.curves import HitCurve, request_hits, tier_thresholds
from kvplan.plan.policy_scale import PolicyScale
from kvplan.plan.stream import AccessStream
from kvplan.units import GIB

BINDING_LABELS = {"gpu": "GPU", "h2d": "H2D link", "d2h": "D2H link", "ssd_read": "SSD reads",
                  "ssd_write": "SSD writes"}
"""Words for the ``binding`` column's values."""


@dataclass(frozen=True)
class Slo:
    """Service-level objective; any field None is not checked."""

    ttft_ms: float | None = None
    """TTFT target at ``percentile``."""
    tpot_ms: float | None = None
    """Mean time per output token after the first."""
    percentile: float = 99.0
    """Percentile the TTFT target applies to."""
    min_rate_rps: float | None = None
    """Minimum sustainable request rate (requests/s) of the whole deployment."""


@dataclass(frozen=True)
class ScreenInput:
    """What the screen needs from the workload, computed once."""

    stream: AccessStream
    pd: np.ndarray | None
    """Prefix distance per access (kvplan.plan.curves.prefix_distances); None when the curve
    is sampled (then ``warm_blocks`` is set)."""
    curve: HitCurve
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    arrival_s: np.ndarray
    """Arrival times, non-decreasing (the stream's request order)."""
    duration_s: float
    """Arrival span; the mean rate is requests / duration."""
    warm_blocks: np.ndarray | None = None
    """Per request, prefix blocks an earlier request touched (kvplan.plan.curves
    .warm_prefix_blocks); set when ``pd`` is None."""
    sample_rate: float | None = None
    """SHARDS rate of ``curve``; None = exact."""
    sampled_accesses: int | None = None
    """Accesses in the SHARDS sample; None = exact."""

    @property
    def rate_rps(self) -> float:
        return self.stream.num_requests / self.duration_s

    def for_shards(self) -> ScreenInput:
        """This input as a screening shard reads it: without the access ids (4 bytes per
        access, 194 MB on a 48 M-access trace; a shard reads per-request figures, the prefix
        distances and the curve), so shards sent to other processes carry a few bytes per
        request. Its ``stream.num_accesses`` is 0."""
        return replace(self, stream=replace(self.stream, ids=self.stream.ids[:0]))

    def prefix_hits(self, capacity_blocks: np.ndarray) -> np.ndarray:
        """Prefix blocks of each request hit at each capacity: (requests, capacities).

        Exact: from the prefix distances. Sampled: each request's warm prefix times the
        curve's share of warm accesses that hit at the capacity, H(C) / H(inf), so the pooled
        hits are the warm total x the sampled curve's shape. Example: warm prefixes [0, 4],
        H(C) / H(inf) = 0.5 -> [[0], [2]].
        """
        caps = np.asarray(capacity_blocks, dtype=np.int64)
        if self.pd is not None:
            return request_hits(self.pd, self.stream.offsets, caps)
        warm = float(self.curve.cum_hits[-1]) if self.curve.cum_hits.size else 0.0
        share = np.clip(self.curve.hits(caps) / max(warm, 1e-12), 0.0, 1.0)
        return self.warm_blocks[:, None].astype(np.float64) * share[None, :]


@dataclass(frozen=True)
class Candidates:
    """Candidate columns (one entry per candidate)."""

    hbm_kv_gib: np.ndarray
    dram_gib: np.ndarray
    ssd_gib: np.ndarray
    inclusive: np.ndarray
    policy: PolicyScale
    """Hit scaling of the eviction policy vs LRU (LRU_SCALE for LRU)."""

    def __len__(self) -> int:
        return int(np.asarray(self.hbm_kv_gib).size)

    def take(self, rows: slice) -> Candidates:
        """The candidates ``rows`` (same policy)."""
        return Candidates(self.hbm_kv_gib[rows], self.dram_gib[rows], self.ssd_gib[rows],
                          self.inclusive[rows], self.policy)


CHUNK_CELLS = 1_000_000
"""Requests x candidates screened at once (about 8 MB per float64 figure)."""


def blocks_of(gib: np.ndarray, block_bytes: int) -> np.ndarray:
    """Whole blocks in a capacity. Example: 1 GiB, 64 MiB blocks -> 16."""
    return np.floor(np.asarray(gib, dtype=np.float64) * GIB / block_bytes).astype(np.int64)


def candidate_thresholds(cands: Candidates, block_bytes: int) -> np.ndarray:
    """(3, candidates) capacities in blocks below which an access hits HBM, HBM-or-DRAM, any
    tier (kvplan.plan.curves.tier_thresholds, per candidate's hierarchy)."""
    caps = [blocks_of(g, block_bytes) for g in (cands.hbm_kv_gib, cands.dram_gib, cands.ssd_gib)]
    return np.stack([np.where(cands.inclusive, a, b) for a, b in zip(
        tier_thresholds(*caps, inclusive=True), tier_thresholds(*caps, inclusive=False),
        strict=True)])


def tier_block_hits(trace: ScreenInput, cands: Candidates, block_bytes: int) -> np.ndarray:
    """Prefix blocks hit per request per tier: int array (3, requests, candidates)."""
    thr = candidate_thresholds(cands, block_bytes)
    scale = cands.policy.at(thr, trace.stream.num_blocks)
    uniq, inv = np.unique(thr, return_inverse=True)
    per = trace.prefix_hits(uniq)[:, inv.reshape(thr.shape)]
    per = np.moveaxis(per, 1, 0).astype(np.float64)  # (3, requests, candidates), cumulative
    length = np.diff(trace.stream.offsets)[None, :, None]
    cum = np.minimum(np.rint(per * scale[:, None, :]), length)
    cum = np.maximum.accumulate(cum, axis=0)
    return np.diff(cum, axis=0, prepend=0.0)


def transfer_table(cm: CostModel, link: str, max_blocks: int, block_bytes: int) -> np.ndarray:
    """Seconds to move k blocks over ``link`` as one transfer, k = 0..max_blocks (0 -> 0 s)."""
    k = np.arange(max_blocks + 1, dtype=np.float64)
    t = np.asarray(cm.transfer_time_s(link, np.maximum(k, 1.0) * block_bytes), dtype=np.float64)
    return np.where(k > 0, t, 0.0)


def prefill_seconds(cm: CostModel, input_tokens: np.ndarray, hit_tokens: np.ndarray) -> np.ndarray:
    """Prefill seconds of the recomputed part of each prompt after ``hit_tokens`` cached.

    Example: 1,024-token prompt with 512 cached -> a 512-token chunk after 512 prior tokens.
    """
    new = np.maximum(input_tokens - hit_tokens, 1.0)
    prior = np.minimum(hit_tokens, input_tokens - 1.0)
    return np.asarray(cm.step_time_s(new, attn_pairs(new, prior), 0, 0), dtype=np.float64)


@dataclass(frozen=True)
class Load:
    """Per-candidate figures at one arrival rate."""

    rho: np.ndarray
    """GPU utilization (prefill + decode)."""
    util: dict[str, np.ndarray]
    """Busy share of each link."""
    ttft_q_s: np.ndarray
    ttft_p50_s: np.ndarray
    ttft_req_s: np.ndarray
    """(requests, candidates): per-request TTFT (FCFS wait + stall + prefill)."""
    tpot_s: np.ndarray
    decode_seqs: np.ndarray
    stable: np.ndarray


@njit(cache=True)
def fcfs_waits(arrival_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """Waits of a FCFS single server (Lindley's recursion), one column per candidate.

    W_0 = 0, W_i = max(0, W_{i-1} + S_{i-1} - (a_i - a_{i-1})). Example: arrivals
    [0, 1, 1.5] s, services [2, 1, 1] s -> waits [0, 1, 1.5] s (the second arrives 1 s into
    the first's 2 s; the third finds 1 + 1 - 0.5 s of work ahead of it).
    """
    wait = np.zeros_like(service_s)
    for i in range(1, service_s.shape[0]):
        gap = arrival_s[i] - arrival_s[i - 1]
        for j in range(service_s.shape[1]):
            wait[i, j] = max(0.0, wait[i - 1, j] + service_s[i - 1, j] - gap)
    return wait


def queue_figures(cm: CostModel, trace: ScreenInput, prefill_s: np.ndarray, stall_s: np.ndarray,
                  link_s: dict[str, np.ndarray], load: float, percentile: float,
                  max_seqs: int) -> Load:
    """GPU and link utilization, TTFT quantiles and TPOT with the arrivals ``load`` times as
    fast (see module doc)."""
    lam = load * trace.rate_rps
    mean_out = float(np.mean(np.maximum(trace.output_tokens - 1, 0)))
    ctx = float(np.mean(trace.input_tokens + trace.output_tokens / 2))
    rho_p = lam * prefill_s.mean(axis=0)
    one, full = (cm.step_time_s(0, 0, b, b * ctx) for b in (1.0, float(max(max_seqs, 2))))
    per_seq = (full - one) / (max(max_seqs, 2) - 1)
    fixed = one - per_seq
    k = lam * mean_out / np.maximum(1.0 - rho_p, 1e-9)
    seqs = np.clip(k * fixed / np.maximum(1.0 - k * per_seq, 1e-9), 1.0, max_seqs)
    tpot = cm.step_time_s(0, 0, seqs, seqs * ctx) / np.maximum(1.0 - rho_p, 1e-9)
    rho_d = lam * mean_out * per_seq
    service = prefill_s / np.maximum(1.0 - rho_d, 1e-6)
    rho_s = lam * service.mean(axis=0)
    wait = fcfs_waits(np.ascontiguousarray(trace.arrival_s / load, dtype=np.float64),
                      np.ascontiguousarray(service, dtype=np.float64))
    ttft = wait + stall_s + service
    util = {k: lam * v.mean(axis=0) for k, v in link_s.items()}
    stable = (rho_s < 1.0) & np.all([u < 1.0 for u in util.values()], axis=0)
    return Load(rho=rho_p + rho_d, util=util,
                ttft_q_s=np.quantile(ttft, percentile / 100.0, axis=0),
                ttft_p50_s=np.quantile(ttft, 0.5, axis=0),
                ttft_req_s=ttft, tpot_s=tpot, decode_seqs=seqs, stable=stable)


@dataclass(frozen=True)
class ReplicaFigures:
    """Per-request arrays (requests, candidates) of one replica's stream, and its loads."""

    hits: np.ndarray
    """(3, requests, candidates) prefix blocks served by HBM, DRAM, SSD."""
    blocks: np.ndarray
    """(requests, 1) prompt blocks."""
    hit_tokens: np.ndarray
    moved: dict[str, np.ndarray]
    """Blocks over each link."""
    prefill_s: np.ndarray
    stall_s: np.ndarray
    loads: dict[str, Load]
    """Queue figures at the replica's rate ("") and twice it ("_2x")."""


def replica_figures(cm: CostModel, trace: ScreenInput, cands: Candidates, percentile: float,
                    max_seqs: int) -> ReplicaFigures:
    """Hits, prefill, stalls, link busy time and queueing of one replica's requests."""
    bs = trace.stream.block_size
    block_bytes = cm.kv_bytes_per_token * bs
    h = tier_block_hits(trace, cands, block_bytes)
    inp = trace.input_tokens.astype(np.float64)[:, None]
    blocks = np.diff(trace.stream.offsets).astype(np.float64)[:, None]
    hit = h.sum(axis=0)
    prefill_s = prefill_seconds(cm, inp, hit * bs)
    max_blocks = int(blocks.max()) if blocks.size else 0
    tab = {k: transfer_table(cm, k, max_blocks, block_bytes) for k in LINK_LABELS}
    moved = {"h2d": h[1] + h[2], "ssd_read": h[2],
             "d2h": np.where(cands.dram_gib > 0, blocks - hit, 0.0),
             "ssd_write": np.where(cands.ssd_gib > 0, blocks - hit, 0.0)}
    link_s = {k: tab[k][v.astype(np.int64)] for k, v in moved.items()}
    stall_s = link_s["h2d"] + link_s["ssd_read"]
    loads = {tag: queue_figures(cm, trace, prefill_s, stall_s, link_s, k, percentile, max_seqs)
             for tag, k in (("", 1.0), ("_2x", 2.0))}
    return ReplicaFigures(hits=h, blocks=blocks, hit_tokens=inp - np.maximum(inp - hit * bs, 1.0),
                          moved=moved, prefill_s=prefill_s, stall_s=stall_s, loads=loads)


def combine_loads(loads: list[Load], percentile: float) -> Load:
    """Replicas as one deployment (module doc): busiest replica's utilization, TTFT
    percentiles over the pooled per-request TTFTs, request-weighted mean TPOT."""
    if len(loads) == 1:
        return loads[0]
    req = np.concatenate([ld.ttft_req_s for ld in loads], axis=0)
    weights = np.array([ld.ttft_req_s.shape[0] for ld in loads], dtype=np.float64)

    def peak(name: str) -> np.ndarray:
        return np.max([getattr(ld, name) for ld in loads], axis=0)

    return Load(rho=peak("rho"), util={k: np.max([ld.util[k] for ld in loads], axis=0)
                                       for k in loads[0].util},
                ttft_q_s=np.quantile(req, percentile / 100.0, axis=0),
                ttft_p50_s=np.quantile(req, 0.5, axis=0),
                ttft_req_s=req, tpot_s=np.average([ld.tpot_s for ld in loads], axis=0,
                                                  weights=weights),
                decode_seqs=peak("decode_seqs"),
                stable=np.all([ld.stable for ld in loads], axis=0))


def evaluate(cm: CostModel, traces: list[ScreenInput], cands: Candidates, slo: Slo,
             max_seqs: int = 256, chunk_cells: int = CHUNK_CELLS) -> dict[str, np.ndarray]:
    """Screen every candidate served by ``len(traces)`` replicas, one routed stream each: one
    column per figure (units in the names), figures of the whole deployment.

    Candidates are screened in chunks of at most ``chunk_cells`` / requests, so the per-request
    arrays stay bounded on long traces (each candidate's figures depend on it alone).
    """
    return merge_columns([evaluate_chunk(cm, traces, c, slo, max_seqs)
                          for c in candidate_chunks(traces, cands, chunk_cells)])


def candidate_chunks(traces: list[ScreenInput], cands: Candidates, chunk_cells: int = CHUNK_CELLS
                     ) -> list[Candidates]:
    """``cands`` cut into runs of at most ``chunk_cells`` / requests candidates (at least one)."""
    per = max(1, chunk_cells // max(sum(t.stream.num_requests for t in traces), 1))
    return [cands.take(slice(i, i + per)) for i in range(0, len(cands), per)]


def merge_columns(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The columns of consecutive chunks, concatenated."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def evaluate_chunk(cm: CostModel, traces: list[ScreenInput], cands: Candidates, slo: Slo,
                   max_seqs: int = 256) -> dict[str, np.ndarray]:
    """:func:`evaluate` of one chunk of candidates, all at once."""
    parts = [replica_figures(cm, t, cands, slo.percentile, max_seqs) for t in traces]

    def cat(name: str, axis: int = 0) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts], axis=axis)

    block_bytes = cm.kv_bytes_per_token * traces[0].stream.block_size
    moved = {k: np.concatenate([p.moved[k] for p in parts]) for k in parts[0].moved}
    cols = _hit_columns(cat("hits", 1), cat("blocks"), cat("hit_tokens"), moved, block_bytes)
    fits = _fits(cm, traces, cands)
    rate = sum(t.rate_rps for t in traces)
    for tag, k in (("", 1.0), ("_2x", 2.0)):
        load = combine_loads([p.loads[tag] for p in parts], slo.percentile)
        cols |= _load_columns(load, slo, k * rate, fits, tag)
    cols["fits_hbm"] = fits
    cols["load_stall_mean_ms"] = cat("stall_s").mean(axis=0) * 1e3
    cols["prefill_mean_ms"] = cat("prefill_s").mean(axis=0) * 1e3
    return cols


def _fits(cm: CostModel, traces: list[ScreenInput], cands: Candidates) -> np.ndarray:
    """The longest request's KV fits in the candidate's HBM KV budget."""
    longest = max((float(np.max(t.input_tokens + t.output_tokens)) for t in traces
                   if t.input_tokens.size), default=0.0)
    return cands.hbm_kv_gib * GIB >= longest * cm.kv_bytes_per_token


def _hit_columns(h: np.ndarray, blocks: np.ndarray, hit_tokens: np.ndarray,
                 moved: dict[str, np.ndarray], block_bytes: int) -> dict[str, np.ndarray]:
    total = max(float(blocks.sum()), 1.0)
    cols = {f"hit_ratio_{t}": h[i].sum(axis=0) / total for i, t in enumerate(("hbm", "dram", "ssd"))}
    cols["hit_ratio"] = h.sum(axis=(0, 1)) / total
    cols["reused_tokens"] = hit_tokens.sum(axis=0)
    for k, v in moved.items():
        cols[f"{k}_gib"] = v.sum(axis=0) * block_bytes / GIB
    return cols


def _load_columns(load: Load, slo: Slo, rate: float, fits: np.ndarray, tag: str
                  ) -> dict[str, np.ndarray]:
    """TTFT/TPOT/utilization figures and SLO verdicts at one rate; ``tag`` suffixes the names."""
    util = {"gpu": load.rho} | load.util
    names = np.array(list(util))
    stack = np.stack(list(util.values()))
    peak = stack.max(axis=0)
    ok_ttft = np.ones_like(peak, dtype=bool) if slo.ttft_ms is None else (
        load.ttft_q_s * 1e3 <= slo.ttft_ms)
    ok_tpot = np.ones_like(ok_ttft) if slo.tpot_ms is None else load.tpot_s * 1e3 <= slo.tpot_ms
    max_rate = rate / np.maximum(peak, 1e-12)
    ok_rate = np.ones_like(ok_ttft) if slo.min_rate_rps is None else max_rate >= slo.min_rate_rps
    good = np.ones_like(load.ttft_req_s, dtype=bool)
    if slo.ttft_ms is not None:
        good &= load.ttft_req_s * 1e3 <= slo.ttft_ms
    good &= ok_tpot[None, :]
    cols = {
        "ttft_p50_ms": load.ttft_p50_s * 1e3, "ttft_pq_ms": load.ttft_q_s * 1e3,
        "tpot_ms": load.tpot_s * 1e3, "decode_seqs": load.decode_seqs,
        "max_rate_rps": max_rate, "goodput_rps": np.where(load.stable, good.mean(axis=0) * rate, 0.0),
        "binding": names[stack.argmax(axis=0)], "stable": load.stable,
        "feasible": load.stable & fits & ok_ttft & ok_tpot & ok_rate,
    } | {f"util_{k}": v for k, v in util.items()}
    return {k + tag: v for k, v in cols.items()} if tag else cols
