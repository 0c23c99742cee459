"""Benchmark of the event-mode simulator: requests replayed per wall second, on one core.

Runs the bundled Mooncake trace (3,993 requests, 512-token blocks) on llama-3.1-8b / h100-sxm
with DRAM and SSD tiers and lookahead prefetch (the issue's bar: >= 3,000 req/s), and the
HBM-only default for comparison. Prints the median of ``--repeat`` runs and the peak RSS.

    python bench/bench_replay.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from kvplan.sim.config import ReplayConfig
from kvplan.sim.engine import run_event
from kvplan.trace import load_workload

CASES = {
    "tiers+lookahead": ReplayConfig(dram_gib=512.0, ssd_gib=4096.0, prefetch="lookahead"),
    "hbm only": ReplayConfig(),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    workload = load_workload()
    print(f"workload: {workload.num_requests} requests, block size {workload.block_size}")
    for name, cfg in CASES.items():
        walls = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = run_event(workload, cfg)
            walls.append(time.perf_counter() - t0)
        wall = statistics.median(walls)
        print(f"{name:>16}: {wall:6.2f} s wall, {workload.num_requests / wall:7.0f} req/s "
              f"(finished {result.run['finished']}, simulated {result.run['sim_duration_s']:.0f} s)")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
