"""Non-LRU eviction policies in the screen: hit scaling from timing-free replays at a few sizes.

Stack distances give LRU exactly. For another policy the screen replays the whole trace's
bare block stream through the tier-rules core (kvplan.sim.cache.replay_blocks, a single HBM
tier, capacities in blocks) at a few capacities, and scales the LRU hits at each tier
threshold by the policy's hits / LRU hits at the same *relative* capacity (log-interpolated),
so one set of replays serves every replica count (a replica's stream of B_r distinct blocks
is read at T / B_r)::

    sampled capacities  C_1 < ... < C_k of B blocks  ->  f(C_i / B) = hits_policy / hits_LRU
    candidate threshold T on a stream of B_r blocks  ->  hits ~= hits_LRU(T) x f(T / B_r)

On the bare stream the core's LRU equals the stack-distance curve exactly
(tests/test_plan_curves.py), so the ratio compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvplan.plan.curves import HitCurve
from kvplan.sim.blocks import BlockStream
from kvplan.sim.cache import replay_blocks
from kvplan.sim.core.spec import CoreSpec

SAMPLE_SIZES = 3
"""Capacities per non-LRU policy replayed timing-free."""


@dataclass(frozen=True)
class PolicyScale:
    """A policy's hits / LRU hits at capacities given as fractions of the distinct blocks.

    Relative capacities carry a ratio measured on the whole trace over to a replica's stream
    (1/R of the blocks at 1/R of the capacity behaves alike).
    """

    fraction: np.ndarray
    """Sampled capacities / distinct blocks, increasing."""
    ratio: np.ndarray
    """Policy hits / LRU hits at each sampled capacity."""

    def at(self, capacity_blocks: np.ndarray, num_blocks: int) -> np.ndarray:
        """Log-interpolated ratio at capacities of a stream of ``num_blocks`` distinct blocks.

        Example: fraction [0.01, 1], ratio [0.5, 1]: 10 of 1,000 blocks -> 0.5, 100 -> 0.75.
        """
        x = np.log(np.maximum(np.asarray(capacity_blocks, dtype=np.float64), 1.0)
                   / max(num_blocks, 1))
        return np.interp(x, np.log(self.fraction), self.ratio)


LRU_SCALE = PolicyScale(fraction=np.ones(1), ratio=np.ones(1))
"""LRU is what the curves give: scale 1 everywhere."""


def sample_capacities(num_blocks: int, k: int = SAMPLE_SIZES) -> np.ndarray:
    """k capacities (blocks) spread geometrically from 1 % to 100 % of the distinct blocks.

    Example: 10,000 blocks, k = 3 -> [100, 1,000, 10,000].
    """
    return np.unique(np.geomspace(max(1, num_blocks / 100), max(1, num_blocks), k).astype(
        np.int64))


def policy_scales(stream: BlockStream, curve: HitCurve, evictions: tuple[str, ...]
                  ) -> dict[str, PolicyScale]:
    """Per policy, its hits / LRU hits at SAMPLE_SIZES relative capacities of the whole trace.

    Run in the main process: on 2 cores the verification workers' start-up already takes the
    second core during the screen, so shipping these replays to them gains nothing.
    """
    caps = sample_capacities(stream.num_blocks)
    lru = np.maximum(curve.hits(caps), 1.0)

    def hits(policy: str, capacity_blocks: int) -> float:
        counts = replay_blocks(stream, CoreSpec.of((capacity_blocks, 0, 0), policy))
        return float(counts.hit_blocks.sum())

    return {p: LRU_SCALE if p == "lru" else PolicyScale(
        fraction=caps / stream.num_blocks,
        ratio=np.array([hits(p, int(c)) for c in caps]) / lru)
        for p in evictions}
