"""Non-LRU eviction policies in the screen: timing-free replays at a sample of sizes.

Stack distances give LRU exactly. For another policy the screen runs the timing-free cache
replay (kvplan.sim.cache.run_cache) with a single HBM tier at a few capacities, and scales the
LRU hits at each tier threshold by the policy's hits / LRU hits at the nearest sampled
capacity (log-interpolated)::

    sampled capacities  C_1 < ... < C_k   ->   f(C_i) = hits_policy(C_i) / hits_LRU(C_i)
    candidate threshold T                  ->   hits ~= hits_LRU(T) x f(T)
"""

from __future__ import annotations

import numpy as np

from kvplan.cost.model import GIB
from kvplan.plan.candidates import ProfileContext
from kvplan.plan.screen import Trace, blocks_of
from kvplan.plan.space import SearchSpace
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


def replay_hits(workload: Workload, ctx: ProfileContext, policy: str, caps: np.ndarray,
                seed: int) -> np.ndarray:
    """Block hits of a single-tier cache of each capacity under ``policy`` (timing-free)."""
    block_bytes = ctx.cm.kv_bytes_per_token * workload.block_size
    out = []
    for c in caps:
        cfg = ReplayConfig(model=ctx.cm.spec.name, profile=ctx.name, mode="cache",
                           hbm_kv_gib=float(c) * block_bytes / GIB, eviction_hbm=policy,
                           seed=seed)
        out.append(float(run_cache(workload, cfg).run["hit_hbm_blocks"]))
    return np.asarray(out)


def policy_scales(workload: Workload, trace: Trace, ctx: ProfileContext, space: SearchSpace,
                  seed: int) -> dict[str, np.ndarray]:
    """Per policy, a (3, tier configs) array of hit scale factors at each tier threshold."""
    cfg = np.array(space.tier_configs(), dtype=np.float64)
    ones = np.ones((3, len(cfg)))
    scales = {"lru": ones}
    others = [p for p in space.evictions if p != "lru"]
    if not others:
        return scales
    block_bytes = ctx.cm.kv_bytes_per_token * trace.stream.block_size
    caps = sample_capacities(trace.stream.num_blocks)
    lru = np.maximum(trace.curve.hits(caps), 1.0)
    c = [blocks_of(cfg[:, i], block_bytes) for i in range(3)]
    incl = cfg[:, 3].astype(bool)
    thr = np.stack([c[0], np.where(incl, np.maximum(c[0], c[1]), c[0] + c[1]),
                    np.where(incl, np.maximum.reduce(c), c[0] + c[1] + c[2])])
    for p in others:
        ratio = replay_hits(workload, ctx, p, caps, seed) / lru
        x = np.log(np.maximum(thr, 1))
        scales[p] = np.interp(x, np.log(caps), ratio)
    return scales
