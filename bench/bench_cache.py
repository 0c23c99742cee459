"""Timing-free replay speed: block accesses per second, compiled LRU kernel and policy classes.

The bundled Mooncake trace (512-token blocks) is re-blocked to a 16-token-equivalent stream
(each block split into 32 chained sub-blocks) and repeated until it has >= 10 M accesses.
Tier sizes: llama-3.1-8b bf16 on h100-sxm (HBM for KV from the cost model), 64 GiB DRAM,
512 GiB SSD. The issue's bar: >= 8 M accesses/s on one core for LRU.

    python bench/bench_cache.py [--class-accesses 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from kvplan.sim.blocks import BlockStream
from kvplan.sim.cache import CacheSpec, _ClassReplay, replay_blocks
from kvplan.sim.config import ReplayConfig
from kvplan.sim.policies import eviction_names
from kvplan.sim.setup import build_cost, tier_capacity_blocks
from kvplan.trace import load_workload

SPLIT = 32
TARGET_ACCESSES = 10_000_000


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


def rate(fn, accesses: int) -> float:
    t0 = time.perf_counter()
    fn()
    return accesses / (time.perf_counter() - t0)


def prefix(stream: BlockStream, n_accesses: int) -> BlockStream:
    r = int(np.searchsorted(stream.offsets, n_accesses))
    return BlockStream(stream.ids[: stream.offsets[r]], stream.offsets[: r + 1],
                       stream.num_blocks, stream.block_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--class-accesses", type=int, default=1_000_000,
                    help="accesses replayed through each class-based policy")
    args = ap.parse_args()
    stream = fine_stream(TARGET_ACCESSES)
    cfg = ReplayConfig(dram_gib=64, ssd_gib=512)
    caps = tier_capacity_blocks(cfg, build_cost(cfg), stream.block_size)
    print(f"stream: {stream.num_accesses:,} accesses, {stream.num_requests:,} requests, "
          f"{stream.num_blocks:,} distinct {stream.block_size}-token blocks; "
          f"capacity blocks HBM/DRAM/SSD = {caps}")
    small = prefix(stream, 20_000)
    replay_blocks(small, CacheSpec(caps))  # compile (or load the numba cache)
    for label, spec in (("HBM only", CacheSpec((caps[0], 0, 0))),
                        ("HBM+DRAM+SSD", CacheSpec(caps))):
        r = rate(lambda spec=spec: replay_blocks(stream, spec), stream.num_accesses)
        print(f"numba LRU kernel, {label:13s}: {r / 1e6:6.2f} M accesses/s  (bar: >= 8)")
    part = prefix(stream, args.class_accesses)
    for name in eviction_names():
        spec = CacheSpec(caps, eviction=(name, name, name))
        r = rate(lambda spec=spec: _ClassReplay(part, spec).run(), part.num_accesses)
        print(f"class {name:7s} HBM+DRAM+SSD:        {r / 1e6:6.2f} M accesses/s "
              f"({part.num_accesses:,} accesses)")


if __name__ == "__main__":
    main()
