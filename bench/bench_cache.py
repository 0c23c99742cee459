"""Timing-free replay speed: block accesses per second for every eviction policy.

The bundled Mooncake trace (512-token blocks) is re-blocked to a 16-token-equivalent stream
(each block split into 32 chained sub-blocks) and repeated until it has >= 10 M accesses.
Tier sizes: llama-3.1-8b bf16 on h100-sxm (HBM for KV from the cost model), 64 GiB DRAM,
512 GiB SSD. The issue's bars, on one core: every policy >= 8 M accesses/s through
HBM+DRAM+SSD, LRU >= 15 M/s. Each figure is the best of ``--repeat`` replays (the median
beside it); a replay's time includes building its state (and Belady's future uses). The
first replay in a process can be much slower while the OS hands it fresh memory, so one
untimed full replay runs first.

    python bench/bench_cache.py [--policies lru,arc] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pyarrow as pa

from kvplan.sim.blocks import BlockStream
from kvplan.sim.build import build_cost, tier_capacity_blocks
from kvplan.sim.cache import replay_blocks
from kvplan.sim.config import ReplayConfig
from kvplan.sim.core.spec import CoreSpec
from kvplan.sim.policies import eviction_names
from kvplan.trace import load_workload

SPLIT = 32
TARGET_ACCESSES = 10_000_000
BARS = {"lru": 15.0}
"""M accesses/s each policy must reach (8 unless named)."""


def fine_stream(min_accesses: int) -> BlockStream:
    """The bundled trace with each 512-token block split into 32 sub-blocks, repeated."""
    w = load_workload()
    col = w.table.column("block_hashes").combine_chunks()
    offsets = np.asarray(col.offsets, np.int64)
    values = np.asarray(col.values, np.uint64)
    sub = (values[:, None] * np.uint64(0x9E3779B97F4A7C15)
           + np.arange(SPLIT, dtype=np.uint64)[None, :]).reshape(-1)
    reps = -(-min_accesses // len(sub))
    one = BlockStream.from_hash_lists(
        pa.ListArray.from_arrays(offsets * SPLIT, sub), w.block_size // SPLIT)
    ids = np.tile(one.ids, reps)
    lens = np.tile(np.diff(one.offsets), reps)
    return BlockStream(ids, np.concatenate(([0], np.cumsum(lens))), one.num_blocks,
                       one.block_size)


def rates(stream: BlockStream, spec: CoreSpec, repeat: int) -> list[float]:
    """Accesses per second of ``repeat`` replays (state built inside the timed region)."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        replay_blocks(stream, spec)
        out.append(stream.num_accesses / (time.perf_counter() - t0))
    return out


def prefix(stream: BlockStream, n_accesses: int) -> BlockStream:
    r = int(np.searchsorted(stream.offsets, n_accesses))
    return BlockStream(stream.ids[: stream.offsets[r]], stream.offsets[: r + 1],
                       stream.num_blocks, stream.block_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default=",".join(eviction_names()),
                    help="comma-separated eviction policies to measure")
    ap.add_argument("--repeat", type=int, default=3, help="replays per policy (best reported)")
    args = ap.parse_args()
    stream = fine_stream(TARGET_ACCESSES)
    cfg = ReplayConfig(dram_gib=64, ssd_gib=512)
    caps = tier_capacity_blocks(cfg, build_cost(cfg), stream.block_size)
    print(f"stream: {stream.num_accesses:,} accesses, {stream.num_requests:,} requests, "
          f"{stream.num_blocks:,} distinct {stream.block_size}-token blocks; "
          f"capacity blocks HBM/DRAM/SSD = {caps}; load average {os.getloadavg()[0]:.2f}")
    replay_blocks(prefix(stream, 20_000), CoreSpec.of(caps))  # load the compiled core
    replay_blocks(stream, CoreSpec.of(caps))  # untimed: fresh memory (module docstring)
    lru_hbm = max(rates(stream, CoreSpec.of((caps[0], 0, 0)), args.repeat))
    print(f"lru     HBM only    : {lru_hbm / 1e6:6.2f} M accesses/s")
    for name in args.policies.split(","):
        rs = rates(stream, CoreSpec.of(caps, name), args.repeat)
        best, median = max(rs) / 1e6, float(np.median(rs)) / 1e6
        bar = BARS.get(name, 8.0)
        verdict = "ok" if best >= bar else "BELOW BAR"
        print(f"{name:7s} HBM+DRAM+SSD: {best:6.2f} M accesses/s (median {median:5.2f})  "
              f"(bar >= {bar:g}: {verdict})")
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
