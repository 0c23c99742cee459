"""Benchmark of the event-mode simulator: requests replayed per wall second, on one core.

Runs the bundled Mooncake trace (3,993 requests, 512-token blocks) on llama-3.1-8b / h100-sxm
with DRAM and SSD tiers and lookahead prefetch (the issue's bar: >= 3,000 req/s), and the
HBM-only default for comparison. Prints the median wall time of ``--repeat`` runs, the
fastest run's CPU time (less sensitive to other load on a shared machine), the load average
and the peak RSS.

    python bench/bench_replay.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
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
    n = workload.num_requests
    print(f"workload: {n} requests, block size {workload.block_size}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for name, cfg in CASES.items():
        walls, cpus = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            result = run_event(workload, cfg)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        wall, cpu = statistics.median(walls), min(cpus)
        print(f"{name:>16}: {wall:6.2f} s wall, {n / wall:7.0f} req/s; best CPU {cpu:5.2f} s, "
              f"{n / cpu:7.0f} req/s (finished {result.run.timing.finished}, "
              f"simulated {result.run.timing.sim_duration_s:.0f} s)")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss_mib:.0f} MiB; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
