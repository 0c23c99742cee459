"""Non-LRU eviction policies in the screen: timing-free replays at a sample of sizes.

Stack distances give LRU exactly. For another policy the screen runs the timing-free cache
replay (kvplan.sim.cache.run_cache) of the whole trace with a single HBM tier at a few
capacities, and scales the LRU hits at each tier threshold by the policy's hits / LRU hits at
the same *relative* capacity (log-interpolated), so one set of replays serves every replica
count (a replica's stream of B_r distinct blocks is read at T / B_r)::

    sampled capacities  C_1 < ... < C_k of B blocks  ->  f(C_i / B) = hits_policy / hits_LRU
    candidate threshold T on a stream of B_r blocks  ->  hits ~= hits_LRU(T) x f(T / B_r)
"""

from __future__ import annotations

import numpy as np

from kvplan.cost.model import GIB
from kvplan.plan.candidates import ProfileContext
from kvplan.plan.screen import LRU_SCALE, PolicyScale, Trace
from kvplan.sim.cache import run_cache
from kvplan.sim.config import ReplayConfig
from kvplan.workload import Workload

SAMPLE_SIZES = 3
"""Capacities per non-LRU policy replayed timing-free."""


def sample_capacities(num_blocks: int, k: int = SAMPLE_SIZES) -> np.ndarray:
    """k capacities (blocks) spread geometrically from 1 % to 100 % of the distinct blocks.

    Example: 10,000 blocks, k = 3 -> [100, 1,000, 10,000].
    """
    return np.unique(np.geomspace(max(1, num_blocks / 100), max(1, num_blocks), k).astype(
        np.int64))


def replay_hits(workload: Workload, model: str, profile: str, block_bytes: int, policy: str,
                capacity_blocks: int, seed: int) -> float:
    """Block hits of a single-tier cache of ``capacity_blocks`` under ``policy`` (timing-free)."""
    cfg = ReplayConfig(model=model, profile=profile, mode="cache",
                       hbm_kv_gib=float(capacity_blocks) * block_bytes / GIB,
                       eviction_hbm=policy, seed=seed)
    return float(run_cache(workload, cfg).run["hit_hbm_blocks"])


def policy_scales(workload: Workload, trace: Trace, ctx: ProfileContext,
                  evictions: tuple[str, ...], seed: int) -> dict[str, PolicyScale]:
    """Per policy, its hits / LRU hits at SAMPLE_SIZES relative capacities of the whole trace.

    Run in the main process: on 2 cores the verification workers' start-up already takes the
    second core during the screen, so shipping these replays to them gains nothing.
    """
    caps = sample_capacities(trace.stream.num_blocks)
    lru = np.maximum(trace.curve.hits(caps), 1.0)
    block_bytes = ctx.cm.kv_bytes_per_token * trace.stream.block_size
    args = (ctx.cm.spec.name, ctx.name, block_bytes)
    return {p: LRU_SCALE if p == "lru" else PolicyScale(
        fraction=caps / trace.stream.num_blocks,
        ratio=np.array([replay_hits(workload, *args, p, int(c), seed) for c in caps]) / lru)
        for p in evictions}
