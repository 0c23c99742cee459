"""Builds what a run needs from its config: cost model, tiers sized in blocks, links."""

from __future__ import annotations

import numpy as np

from kvplan.cost.model import GIB, CostModel
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model
from kvplan.sim.blocks import BlockStream
from kvplan.sim.config import ReplayConfig
from kvplan.sim.coverage import link_range
from kvplan.sim.policies import eviction_class, make_eviction
from kvplan.sim.tiers import Tier
from kvplan.sim.transfers import LINK_NAMES, BusyTimeline, Link


def build_cost(config: ReplayConfig) -> CostModel:
    """The cost model of ``config``'s model on ``config``'s hardware profile."""
    return CostModel.build(load_model(config.model), load_profile(config.profile),
                           config.kv_dtype, layout=config.layout,
                           max_batched_tokens=config.max_batched_tokens, max_seqs=config.max_seqs)


def tier_capacity_blocks(config: ReplayConfig, cost: CostModel, block_size: int
                         ) -> tuple[int, int, int]:
    """HBM, DRAM and SSD capacity in whole blocks.

    Worked example: llama-3.1-8b bf16 has 131,072 KV bytes per token; a 512-token block is
    64 MiB, so ``--dram-gib 64`` holds 1,024 blocks.
    """
    block_bytes = cost.kv_bytes_per_token * block_size
    hbm = cost.hbm_kv_capacity_bytes(config.hbm_kv_gib) // block_bytes
    return hbm, int(config.dram_gib * GIB) // block_bytes, int(config.ssd_gib * GIB) // block_bytes


def build_tiers(config: ReplayConfig, cost: CostModel, stream: BlockStream,
                arrival_s: np.ndarray) -> list[Tier]:
    """HBM, DRAM, SSD tiers; oracle policies see each block's future uses by arrival time."""
    caps = tier_capacity_blocks(config, cost, stream.block_size)
    names = (config.eviction_hbm, config.eviction_dram, config.eviction_ssd)
    future = (stream.future_uses(arrival_s)
              if any(eviction_class(n).is_oracle for n in names) else None)
    return [Tier(tier, cap, make_eviction(name, cap, future))
            for tier, cap, name in zip(("hbm", "dram", "ssd"), caps, names, strict=True)]


def build_links(cost: CostModel, timeline: BusyTimeline) -> list[Link]:
    """The four links in ``LINK_NAMES`` order, timed by the cost model."""
    return [Link(i, cost.profile.link(name).latency_us * 1e-6,
                 lambda n, name=name: float(cost.transfer_time_s(name, n)), timeline,
                 link_range(cost, name))
            for i, name in enumerate(LINK_NAMES)]
