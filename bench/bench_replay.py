"""Benchmark of the event-mode simulator: requests replayed per wall second, on one core.

Bars (issue #15): >= 6,000 req/s on the bundled Mooncake trace (3,993 requests, 512-token
blocks) on llama-3.1-8b / h100-sxm with DRAM and SSD tiers and lookahead prefetch (the
HBM-only default is printed for comparison); and >= 2,000 req/s with <= 1.5 GB peak RSS on the
agent workload ``kvplan trace synth agent --sessions 5000 --rate 2 --seed 1`` (74,737
requests, 48 M prompt blocks of 16 tokens; synthesised into ``--agent`` when the file is
missing) with DRAM 512 GiB + SSD 4 TiB and lookahead. A replay's time includes building its
block stream (dense ids of the workload's hashes), as ``kvplan replay`` does.

Prints the median wall time of the repeats, the fastest run's CPU time (less sensitive to
other load on a shared machine), the load average and the peak RSS. The agent case runs in a
child process, so its peak RSS is its own (loading the workload included).

    python bench/bench_replay.py [--repeat 3] [--agent /tmp/agent5000.parquet]
    python bench/bench_replay.py --no-agent         # the Mooncake cases only
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kvplan.sim.config import ReplayConfig
from kvplan.sim.engine import run_event
from kvplan.trace import load_workload
from kvplan.workload import Workload

TIERS = ReplayConfig(dram_gib=512.0, ssd_gib=4096.0, prefetch="lookahead")
CASES = {"tiers+lookahead": TIERS, "hbm only": ReplayConfig()}
AGENT_SYNTH = ["agent", "--sessions", "5000", "--rate", "2", "--seed", "1"]


def load_note() -> str:
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_case(name: str, workload: Workload, cfg: ReplayConfig, repeat: int) -> None:
    """Replay ``workload`` ``repeat`` times; print the median wall and best CPU rates."""
    n = workload.num_requests
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run_event(workload, cfg)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    wall, cpu = statistics.median(walls), min(cpus)
    print(f"{name:>16}: {wall:6.2f} s wall, {n / wall:7.0f} req/s; best CPU {cpu:6.2f} s, "
          f"{n / cpu:7.0f} req/s (finished {result.run.timing.finished}, "
          f"simulated {result.run.timing.sim_duration_s:.0f} s); {load_note()}", flush=True)


def agent_child(path: Path, repeat: int) -> None:
    """The agent case, in this (child) process: load, replay, print, report peak RSS."""
    t0 = time.perf_counter()
    workload = load_workload(path)
    print(f"agent workload: {workload.num_requests} requests, block size "
          f"{workload.block_size}, loaded in {time.perf_counter() - t0:.1f} s "
          f"(peak RSS {peak_rss_mib():.0f} MiB)", flush=True)
    time_case("agent tiers+la", workload, TIERS, repeat)
    print(f"agent peak RSS: {peak_rss_mib():.0f} MiB (bar 1,536 MiB, the workload's table "
          f"included)")


def run_agent(path: Path, repeat: int) -> None:
    if not path.exists():
        print(f"synthesising {path} ...", flush=True)
        subprocess.run([sys.executable, "-c", "from kvplan.cli.main import main; main()",
                        "trace", "synth", *AGENT_SYNTH, "-o", str(path)], check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, __file__, "--agent-child", str(path), "--agent-repeat",
                    str(repeat)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="repeats of each Mooncake case")
    ap.add_argument("--agent", type=Path, default=Path("/tmp/kvplan-bench/agent5000.parquet"),
                    help="the agent workload (synthesised there when missing)")
    ap.add_argument("--agent-repeat", type=int, default=1, help="repeats of the agent case")
    ap.add_argument("--no-agent", action="store_true", help="skip the agent case")
    ap.add_argument("--agent-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.agent_child is not None:
        agent_child(args.agent_child, args.agent_repeat)
        return
    workload = load_workload()
    print(f"workload: {workload.num_requests} requests, block size {workload.block_size}; "
          f"{load_note()}")
    for name, cfg in CASES.items():
        time_case(name, workload, cfg, args.repeat)
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    if not args.no_agent:
        args.agent.parent.mkdir(parents=True, exist_ok=True)
        run_agent(args.agent, args.agent_repeat)


if __name__ == "__main__":
    main()
