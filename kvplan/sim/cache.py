"""Timing-free block replay (``--mode cache``): requests one at a time through the tier rules.

No clock and no scheduler: each request, in arrival order, runs the life that event mode
gives it when it is alone and links are instant (tests/test_modes_differential.py checks the
two agree), calling the same compiled rules (kvplan.sim.core.rules) and applying every move
at once. Per request, its prompt blocks ``b0 .. bk-1`` head first:

1. lookup: the longest prefix found in some tier, at most its lookup limit (and HBM's
   capacity); its HBM hits are pinned;
2. room in HBM for its DRAM / SSD hits, which load (SSD in two hops; inclusive tiers keep a
   copy in DRAM) and its hits are counted; with nothing to load, room for its prefill;
3. after the loads, room for its prefill: the missed prompt blocks and its partial last
   block; the computed prompt blocks become cached, and the store rule copies them down;
4. room for its decode blocks; then its blocks are touched tail first and unpinned.

Moves land at once, in the order the rules queue them; blocks per link are counted. Given a
bare block stream (no token counts) a request reuses any prefix and holds no private
blocks: the classic block-level cache replay, which for LRU equals the stack-distance
curves (kvplan.plan.curves). A request whose blocks exceed what HBM can hold caches its
first blocks and computes the rest without caching them (event mode refuses such a
configuration before simulating).

Link counts are in blocks (kvplan.hierarchy.Link order); bytes = blocks x block bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import types

from kvplan.hierarchy import TIER_LABELS
from kvplan.sim.blocks import BlockStream
from kvplan.sim.config import ReplayConfig
from kvplan.sim.core import layout as L
from kvplan.sim.core import rules
from kvplan.sim.core.layout import HBM, NOW, F, M, V, compiled
from kvplan.sim.core.spec import CoreSpec
from kvplan.sim.core.state import build_state
from kvplan.sim.policies import eviction_policy
from kvplan.sim.request import Shapes
from kvplan.sim.results import LinkFigures, ReplayResult
from kvplan.workload.schema import Workload


@dataclass(frozen=True)
class CacheCounts:
    """What a timing-free replay counts, in blocks."""

    hit_blocks: np.ndarray
    """int64 (num_requests, 3): prefix blocks hit in HBM, DRAM, SSD per request."""
    link_blocks: np.ndarray
    """int64 (4,): blocks over each link, in kvplan.hierarchy.Link order."""
    peak_blocks: np.ndarray
    """int64 (3,): most blocks resident in each tier (HBM: resident + private)."""


def replay_blocks(stream: BlockStream, spec: CoreSpec, shapes: Shapes | None = None
                  ) -> CacheCounts:
    """Replay ``stream`` through ``spec``'s tiers (module docstring); ``shapes`` gives each
    request's lookup limit and private blocks (None: a bare block stream)."""
    future = (stream.future_uses()
              if any(eviction_policy(n).is_oracle for n in spec.eviction) else None)
    lengths = np.diff(stream.offsets)
    m, f = build_state(spec, stream.num_blocks, int(lengths.max()) if len(lengths) else 0,
                       future)
    hits = np.zeros((stream.num_requests, 3), np.int64)
    none = np.zeros(0, np.int64)
    s = shapes or Shapes(none, none, none)
    _replay(m, f, np.ascontiguousarray(stream.ids, np.int64),
            np.ascontiguousarray(stream.offsets, np.int64), s.limit_blocks, s.tail_blocks,
            s.decode_blocks, hits)
    peaks = [L.tier_word(m, t, L.PEAK) for t in range(3)]
    return CacheCounts(hits, m[L.LINK_BLOCKS:L.LINK_BLOCKS + 4].copy(),
                       np.array(peaks, np.int64))


@compiled(V(M, F, M, M, M, M, M, types.int64[:, ::1]))
def _replay(m, f, ids, offsets, limits, tails, decodes, hits_out):
    shaped = len(limits) > 0
    cap = m[L.th(HBM) + L.CAP]
    out = m[L.OUT_AT]
    for r in range(len(offsets) - 1):
        blocks = ids[offsets[r]:offsets[r + 1]]
        full = len(blocks)
        f[NOW] = r
        hits = rules.lookup(m, blocks, min(limits[r] if shaped else full, cap))
        loads = hits - rules.count_level(m, hits, HBM)
        prefill = full - hits + (tails[r] if shaped else 0)
        rules.pin_prefix(m, blocks, hits)
        granted = -1
        if loads:
            rules.reserve(m, f, loads)
        else:
            granted = min(prefill, rules.room(m))
            rules.reserve(m, f, granted)
        rules.admit(m, f, blocks, hits)
        for t in range(3):
            hits_out[r, t] = m[out + t]
        rules.drain(m, f)
        if granted < 0:
            granted = min(prefill, rules.room(m))
            rules.reserve(m, f, granted)
        f[NOW] = r + 0.5
        committed = min(full - hits, granted)
        rules.commit(m, f, blocks, hits, hits + committed)
        rules.flush_stores(m, f)
        rules.drain(m, f)
        decode = min(decodes[r], rules.room(m)) if shaped else 0
        if decode:
            rules.reserve(m, f, decode)
            rules.drain(m, f)
        held = hits + committed
        rules.touch_prefix(m, f, blocks, held)
        rules.unpin_blocks(m, blocks[:held])
        rules.free_private(m, granted - committed + decode)


def run_cache(workload: Workload, config: ReplayConfig) -> ReplayResult:
    """Timing-free replay of ``workload`` under ``config``: hits per tier and link bytes."""
    from kvplan.sim.build import build_cost, core_spec, tier_capacity_blocks
    from kvplan.sim.metrics import summarise

    cost = build_cost(config)
    caps = tier_capacity_blocks(config, cost, workload.block_size)
    stream = BlockStream.from_workload(workload)
    t = workload.table
    shapes = Shapes.of(t.column("input_tokens").to_numpy(), t.column("output_tokens").to_numpy(),
                       workload.block_size)
    counts = replay_blocks(stream, core_spec(config, caps), shapes)
    block_bytes = cost.kv_bytes_per_token * workload.block_size
    requests = _request_rows(workload, stream, counts)
    links = tuple(LinkFigures(int(n) * block_bytes, None) for n in counts.link_blocks)
    run = summarise(config, "cache", requests.height, requests, workload.block_size,
                    block_bytes, caps, tuple(int(p) for p in counts.peak_blocks), links, None)
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
        **{f"hit_{label}_blocks": hit[:, i] for i, label in enumerate(TIER_LABELS)},
        "recomputed_tokens": input_tokens - hit.sum(axis=1) * bs,
    })
