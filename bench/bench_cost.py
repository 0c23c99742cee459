"""Speed of the cost-model calls the simulator makes in its inner loop.

Run: python bench/bench_cost.py   (prints microseconds per call; no GPU needed)
"""

from __future__ import annotations

import time

import numpy as np

from kvplan.cost.model import CostModel, attn_pairs
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model


def per_call_us(fn, n: int = 50_000) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    start = time.perf_counter()
    cm = CostModel.build(load_model("llama-3.1-8b"), load_profile("h100-sxm"))
    print(f"load model + profile + build: {(time.perf_counter() - start) * 1e3:.1f} ms")
    pairs = attn_pairs(512, 2048)
    print(f"step_time_s, scalar mixed batch: {per_call_us(lambda: cm.step_time_s(512, pairs, 64, 64 * 3000)):.2f} us/call")
    print(f"transfer_time_s('h2d', 1 MiB):  {per_call_us(lambda: cm.transfer_time_s('h2d', 1 << 20)):.2f} us/call")
    seqs = np.full(100_000, 64)
    ctx = 64 * np.arange(1000, 101_000)
    start = time.perf_counter()
    cm.step_time_s(0, 0, seqs, ctx)
    print(f"step_time_s, 100,000 decode iterations as arrays: {(time.perf_counter() - start) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
