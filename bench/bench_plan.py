"""Benchmark of kvplan plan against the issue's bars (run: python bench/bench_plan.py).

Bars: exact stack distances >= 4 M block accesses/s per core; SHARDS sampling >= 20 M/s;
analytic screen of >= 100 tier configurations x 3 policies on the Mooncake trace < 10 s;
the whole plan incl. event verification of the top 5 < 30 s on 2 cores.
"""

from __future__ import annotations

import time

import numpy as np

from kvplan.hardware.prices import load_prices
from kvplan.plan.planner import run_plan
from kvplan.plan.shards import shards_curve
from kvplan.plan.spec import PlanSpec
from kvplan.plan.stackdist import stack_distances
from kvplan.trace import load_workload


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def main() -> None:
    rng = np.random.default_rng(0)
    n = 10_000_000
    ids = (rng.zipf(1.2, n) % 2_000_000).astype(np.int64)
    offsets = np.arange(0, n + 1, 40, dtype=np.int64)
    stack_distances(ids[:100], 2_000_000, offsets[:3])
    _, dt = timed(stack_distances, ids, 2_000_000, offsets)
    print(f"exact stack distances : {n / dt / 1e6:6.1f} M accesses/s   (bar >= 4)")
    keys = ids.astype(np.uint64)
    shards_curve(keys[:1000], 0.01)
    sc, dt = timed(shards_curve, keys, 0.01)
    print(f"SHARDS R={sc.sample_rate:.3f}     : {n / dt / 1e6:6.1f} M accesses/s   (bar >= 20)")

    w = load_workload(None)
    prices = load_prices()
    run_plan(w, PlanSpec(verify_top=0, space={"evictions": ["lru"]}), prices)  # warm caches
    res, dt = timed(run_plan, w, PlanSpec(verify_top=0), prices)
    print(f"screen                : {dt:6.2f} s for {res.candidates.height} candidates "
          f"({res.candidates.height // 3} tier configs x 3 policies)   (bar < 10 s)")
    spec = PlanSpec(verify_top=5, verify_near_misses=0, jobs=2, load_scale=0.5)
    res, dt = timed(run_plan, w, spec, prices)
    print(f"whole plan + verify 5 : {dt:6.2f} s with {res.verified.height} event replays on "
          f"2 processes, load x0.5   (bar < 30 s)")
    ver = res.candidates.join(res.verified, on="candidate_id").filter(
        res.candidates.join(res.verified, on="candidate_id")["ttft_pq_ms"].is_finite())
    err = (ver["ttft_pq_ms"] / ver["sim_ttft_pq_ms"] - 1).abs().mean() or float("nan")
    print(f"screen vs event sim   : TTFT p{res.spec.slo.percentile:g} mean |rel error| "
          f"{err:.1%} over {ver.height} verified candidates with a finite analytic TTFT")


if __name__ == "__main__":
    main()
