"""Builds what a run needs from its config: the cost model, tier capacities in blocks, links."""

from __future__ import annotations

import numpy as np

from kvplan.cost.model import CostModel
from kvplan.engines import tier_rules
from kvplan.errors import KvplanError
from kvplan.hardware.profile import load_profile
from kvplan.hierarchy import Link
from kvplan.model.spec import load_model
from kvplan.sim.blocks import BlockStream
from kvplan.sim.config import ReplayConfig
from kvplan.sim.core.spec import CoreSpec
from kvplan.sim.core.state import build_state
from kvplan.sim.coverage import link_range
from kvplan.sim.policies import eviction_policy
from kvplan.sim.transfers import BusyTimeline, SharedLink
from kvplan.units import GIB


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


def hbm_kv_gib_of(blocks: int | None, tokens: int | None, block_size: int,
                  kv_bytes_per_token: int) -> float:
    """GiB of HBM KV given as ``blocks`` (``--hbm-kv-blocks``) or ``tokens``
    (``--hbm-kv-tokens``, rounded down to whole blocks), the form ``--hbm-kv-gib`` takes;
    exact, so tier_capacity_blocks gives back the count of blocks. Worked example:
    llama-3.1-8b bf16, 131,072 B/token, block size 16: 1,000 blocks (or 16,010 tokens) =
    1000 x 16 x 131,072 B = 1.953125 GiB -> 1,000 blocks."""
    flag, count = (("--hbm-kv-blocks", blocks) if blocks is not None
                   else ("--hbm-kv-tokens", (tokens or 0) // block_size))
    if blocks is None and count < 1:
        raise KvplanError(f"--hbm-kv-tokens: {tokens} tokens hold no whole block of "
                          f"{block_size} tokens; expected >= {block_size}")
    most = (2**53 - 1) // (block_size * kv_bytes_per_token)
    if not 1 <= count <= most:
        raise KvplanError(f"{flag}: expected 1..{most:,} blocks, got {count}")
    return count * block_size * kv_bytes_per_token / GIB


def core_spec(config: ReplayConfig, capacity_blocks: tuple[int, int, int]) -> CoreSpec:
    """The tiers and placement rules of ``config`` at the given capacities."""
    return CoreSpec(tuple(int(c) for c in capacity_blocks),  # type: ignore[arg-type]
                    config.evictions, tier_rules(config.engine, config.write, config.inclusive,
                                                 config.store_threshold))


def build_state_for(config: ReplayConfig, cost: CostModel, stream: BlockStream,
                    use_times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The core's empty state for ``config``; an oracle policy sees each block's future uses
    at ``use_times`` per request (default: the request index)."""
    caps = tier_capacity_blocks(config, cost, stream.block_size)
    future = (stream.future_uses(use_times)
              if any(eviction_policy(n).is_oracle for n in config.evictions) else None)
    lengths = np.diff(stream.offsets)
    return build_state(core_spec(config, caps), stream.num_blocks,
                       int(lengths.max()) if len(lengths) else 0, future)


def build_links(cost: CostModel, timeline: BusyTimeline) -> list[SharedLink]:
    """The four links in kvplan.hierarchy.Link order, timed by the cost model."""
    return [SharedLink(link, cost.profile.link(link.label).latency_us * 1e-6,
                       lambda n, name=link.label: float(cost.transfer_time_s(name, n)), timeline,
                       link_range(cost, link.label))
            for link in Link]
