"""Timing-free block replay (``--mode cache``): the block-access stream through HBM/DRAM/SSD.

No clock: requests are replayed one at a time in arrival order and each one's blocks are
looked up, loaded, computed and stored as described in docs/simulation.md ("Cache mode").
Per request, with the prompt's blocks ``b0 .. bk-1`` (head first):

1. lookup: the longest prefix found in some tier, each block in the fastest tier holding it
   (chained hashes: the prefix ends at the first block no tier holds); the prefix is pinned;
2. one pass tail first (vLLM frees a request's blocks in reverse order, so among equally
   recent blocks chain tails are evicted before heads): an HBM hit is touched; a DRAM hit
   crosses h2d, an SSD hit ssd_read + h2d (two hops; inclusive tiers keep a staging copy in
   DRAM); a missed block is computed. Every block then goes into HBM (touched if already
   there; not cached if HBM is full of pinned blocks). Exclusive tiers drop a block from
   the lower tier it was promoted from;
3. writes: write-through copies each computed block to every lower tier lacking it;
   write-through-selective does so on a block's ``store_threshold``-th prefix hit; write-back
   copies nothing now. Under write-back, or with exclusive tiers, a block evicted from a tier
   is demoted into the next present tier below unless some lower tier holds it;
4. the pins are released.

Link counts are in blocks (LINK_NAMES order); bytes = blocks x block bytes. When every tier
runs LRU a compiled kernel (kvplan.sim.cache_lru) replays the stream; otherwise the policy
classes do, with identical results (tests/test_cache_equivalence.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kvplan.sim.blocks import BlockStream
from kvplan.sim.config import ReplayConfig, WritePolicy
from kvplan.sim.policies import eviction_class, make_eviction
from kvplan.sim.results import ReplayResult
from kvplan.sim.tiers import TIER_NAMES, Tier, TierStack
from kvplan.sim.transfers import D2H, H2D, LINK_NAMES, SSD_READ, SSD_WRITE
from kvplan.workload.schema import Workload

HBM, DRAM, SSD = range(3)


@dataclass(frozen=True)
class CacheSpec:
    """The hierarchy a block stream is replayed through."""

    capacity_blocks: tuple[int, int, int]
    """HBM, DRAM, SSD capacity in blocks (0 = absent)."""
    eviction: tuple[str, str, str] = ("lru", "lru", "lru")
    """Eviction policy name per tier."""
    write: WritePolicy = "write-through"
    """When computed blocks are copied to lower tiers."""
    store_threshold: int = 2
    """write-through-selective: copy a block down on its n-th prefix hit."""
    inclusive: bool = True
    """False: a block promoted upward leaves the lower tier, and evicted blocks are demoted."""

    @classmethod
    def from_config(cls, config: ReplayConfig, capacity_blocks: tuple[int, int, int]
                    ) -> CacheSpec:
        return cls(capacity_blocks, (config.eviction_hbm, config.eviction_dram,
                                     config.eviction_ssd),
                   config.write, config.store_threshold, config.inclusive)

    @property
    def all_lru(self) -> bool:
        return all(name == "lru" for name in self.eviction)


@dataclass(frozen=True)
class CacheCounts:
    """What a timing-free replay counts, in blocks."""

    hit_blocks: np.ndarray
    """int64 (num_requests, 3): prefix blocks hit in HBM, DRAM, SSD per request."""
    link_blocks: np.ndarray
    """int64 (4,): blocks over each link, in LINK_NAMES order."""
    peak_blocks: np.ndarray
    """int64 (3,): most blocks resident in each tier after any request."""


def replay_blocks(stream: BlockStream, spec: CacheSpec) -> CacheCounts:
    """Replay ``stream`` through ``spec``'s tiers: the compiled LRU kernel when it applies."""
    if spec.all_lru:
        from kvplan.sim.cache_lru import replay_lru

        return replay_lru(stream, spec)
    return _ClassReplay(stream, spec).run()


class _ClassReplay:
    """The class-based replay: any policy per tier (the module docstring's steps)."""

    def __init__(self, stream: BlockStream, spec: CacheSpec) -> None:
        future = (stream.future_uses()
                  if any(eviction_class(n).is_oracle for n in spec.eviction) else None)
        self.stream, self.spec = stream, spec
        self.stack = TierStack([Tier(t, cap, make_eviction(name, cap, future)) for t, cap, name
                                in zip(TIER_NAMES, spec.capacity_blocks, spec.eviction,
                                       strict=True)])
        self.tiers = self.stack.tiers
        """The stack as a plain list: indexed on every access."""
        self.demote = spec.write == "write-back" or not spec.inclusive
        self.hits = np.zeros((stream.num_requests, 3), np.int64)
        self.links = np.zeros(len(LINK_NAMES), np.int64)
        self.peak = np.zeros(3, np.int64)
        self.prefix_hits = np.zeros(stream.num_blocks, np.int64)
        self.now = 0.0

    def run(self) -> CacheCounts:
        for r in range(self.stream.num_requests):
            self.now = float(r)
            self._request(r, self.stream.request_blocks(r).tolist())
            used = [t.used_blocks for t in self.tiers]
            self.peak = np.maximum(self.peak, used)
        return CacheCounts(self.hits, self.links, self.peak)

    def _request(self, r: int, blocks: list[int]) -> None:
        levels = self.stack.lookup_prefix(blocks)
        pins = list(zip(blocks, levels, strict=False))  # the prefix only
        for b, lv in pins:
            self.tiers[lv].pin(b)
        for i in range(len(blocks) - 1, -1, -1):
            b = blocks[i]
            lv = levels[i] if i < len(levels) else -1
            if lv >= 0:
                self.hits[r, lv] += 1
                self._use_hit(b, lv)
            else:
                self._to_hbm(b)
                if self.spec.write == "write-through":
                    self._write_down(b)
        for b, lv in pins:
            if b in self.tiers[lv] and self.tiers[lv].refcount(b) > 0:
                self.tiers[lv].unpin(b)

    def _use_hit(self, b: int, lv: int) -> None:
        tier = self.tiers[lv]
        if lv == HBM:
            tier.touch(b, self.now)
        else:
            self.links[H2D] += 1
            if lv == SSD:
                self.links[SSD_READ] += 1
            if self.spec.inclusive:
                tier.touch(b, self.now)
                if lv == SSD and b not in self.tiers[DRAM]:
                    self._place(DRAM, b)
            if self._to_hbm(b) and not self.spec.inclusive:
                tier.unpin(b)
                tier.remove(b)
        if self.spec.write == "write-through-selective":
            self.prefix_hits[b] += 1
            if self.prefix_hits[b] == self.spec.store_threshold:
                self._write_down(b)

    def _to_hbm(self, b: int) -> bool:
        """Put a used block in HBM (touch if there); False if HBM is full of pinned blocks."""
        hbm = self.tiers[HBM]
        if b in hbm:
            hbm.touch(b, self.now)
            return True
        return self._place(HBM, b)

    def _write_down(self, b: int) -> None:
        """Copy an HBM block into every present lower tier lacking it."""
        dram, ssd = self.tiers[DRAM], self.tiers[SSD]
        had_dram = b in dram
        to_dram = dram.present and not had_dram and self._place(DRAM, b)
        to_ssd = ssd.present and b not in ssd and self._place(SSD, b)
        if to_dram or (to_ssd and not had_dram):
            self.links[D2H] += 1
        if to_ssd:
            self.links[SSD_WRITE] += 1

    def _place(self, level: int, b: int) -> bool:
        """Insert ``b`` at ``level``; a victim cascades down while demotion applies."""
        if not self.tiers[level].can_insert():
            return False
        while True:
            evicted = self.tiers[level].insert(b, self.now)
            if not evicted or not self.demote:
                return True
            b, level = evicted[0], self._demotion_target(level, evicted[0])
            if level < 0:
                return True

    def _demotion_target(self, level: int, b: int) -> int:
        """Next present lower tier that can take evicted ``b`` (counting its link), or -1."""
        below = [lv for lv in range(level + 1, 3) if self.tiers[lv].present]
        if not below or any(b in self.tiers[lv] for lv in below):
            return -1
        target = below[0]
        if not self.tiers[target].can_insert():
            return -1
        if level == HBM:
            self.links[D2H] += 1
        if target == SSD:
            self.links[SSD_WRITE] += 1
        return target


def run_cache(workload: Workload, config: ReplayConfig) -> ReplayResult:
    """Timing-free replay of ``workload`` under ``config``: hits per tier and link bytes."""
    from kvplan.sim.metrics import bound_label, hit_ratios
    from kvplan.sim.setup import build_cost, tier_capacity_blocks

    cost = build_cost(config)
    caps = tier_capacity_blocks(config, cost, workload.block_size)
    stream = BlockStream.from_workload(workload)
    counts = replay_blocks(stream, CacheSpec.from_config(config, caps))
    block_bytes = cost.kv_bytes_per_token * workload.block_size
    requests = _request_rows(workload, stream, counts)
    run: dict[str, float | int | str] = {"mode": "cache", "bound": bound_label(config),
                                         "requests": workload.num_requests}
    run |= hit_ratios(requests, workload.block_size)
    run["recomputed_tokens"] = int(requests["recomputed_tokens"].sum())
    for i, tier in enumerate(TIER_NAMES):
        run[f"{tier}_capacity_blocks"] = int(caps[i])
        run[f"{tier}_peak_blocks"] = int(counts.peak_blocks[i])
        run[f"{tier}_peak_gib"] = int(counts.peak_blocks[i]) * block_bytes / 2**30
    for name, n in zip(LINK_NAMES, counts.link_blocks.tolist(), strict=True):
        run[f"{name}_bytes"] = n * block_bytes
    run["ssd_bytes_written"] = int(counts.link_blocks[SSD_WRITE]) * block_bytes
    return ReplayResult(config=config, requests=requests, run=run, timeseries=pl.DataFrame())


def _request_rows(workload: Workload, stream: BlockStream, counts: CacheCounts
                  ) -> pl.DataFrame:
    """Per-request hits; recomputed tokens = prompt tokens not found in any tier."""
    t, bs = workload.table, workload.block_size
    hit = counts.hit_blocks
    input_tokens = t.column("input_tokens").to_numpy().astype(np.int64)
    return pl.DataFrame({
        "request_id": t.column("request_id").to_numpy(),
        "session_id": t.column("session_id").to_numpy(),
        "input_tokens": input_tokens,
        "prompt_blocks": np.diff(stream.offsets),
        "hit_hbm_blocks": hit[:, HBM], "hit_dram_blocks": hit[:, DRAM],
        "hit_ssd_blocks": hit[:, SSD],
        "recomputed_tokens": input_tokens - hit.sum(axis=1) * bs,
    })
