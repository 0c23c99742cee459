"""Benchmark: `kvplan plan` at production scale, end to end from the CLI, stage by stage.

Bar (issue #15): on the synthetic agent workload `kvplan trace synth agent --sessions 5000
--rate 2 --seed 1` (74,737 requests, 48 M prompt blocks of 16 tokens) the plan finishes in
<= 10 minutes on 2 cores with <= 4 GB peak RSS; with --ray on a local two-worker cluster it
gives the same recommendation. Prints every stage's wall time, CPU time and peak RSS (the
planner's --profile-stages), the peak RSS of the largest process and of the whole process
tree (sampled from /proc), the load average, and what event verification and the non-LRU
policy replays need at the simulator speeds the issue names.

    python bench/bench_scale.py                       # synthesise, then plan (default space)
    python bench/bench_scale.py --sessions 500        # a 7,542-request subset to iterate on
    python bench/bench_scale.py --eviction lru --ray  # LRU only; then the same on Ray
    python bench/bench_scale.py --trace agent.parquet -- --verify-wall-s 900
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from kvplan.plan.policy_scale import SAMPLE_SIZES
from kvplan.plan.stream import num_accesses
from kvplan.trace import load_workload

EVENT_REQ_S = (470.0, 2000.0)
"""Event-replay speeds on this workload: today's, and the issue's target."""
POLICY_ACCESSES_S = (0.1e6, 8e6)
"""Timing-free non-LRU replay speeds: today's Python classes, and the compiled target."""
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> tuple[float, float]:
    """(sum, largest) resident MiB over ``root`` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            pages = int((d / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
        rss[int(d.name)] = pages * PAGE / 2**20
    todo, seen = [root], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children.get(p, [])
    vals = [rss.get(p, 0.0) for p in seen]
    return sum(vals), max(vals, default=0.0)


def run_plan(trace: Path, extra: list[str]) -> dict:
    """`kvplan plan --json --profile-stages` in a subprocess, its tree's memory sampled."""
    cmd = [sys.executable, "-c", "from kvplan.cli.main import main; main()", "plan",
           "--trace", str(trace), "--json", "--profile-stages", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"sum": 0.0, "largest": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            total, largest = tree_rss(proc.pid)
            peak["sum"], peak["largest"] = max(peak["sum"], total), max(peak["largest"], largest)

    threading.Thread(target=sample, daemon=True).start()
    out, err = proc.communicate()
    stop.set()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"kvplan plan failed (exit {proc.returncode}): {err.strip()[-500:]}")
    return json.loads(out) | {"_wall_s": wall, "_tree_peak_mib": peak["sum"],
                              "_largest_peak_mib": peak["largest"]}


def report(label: str, res: dict, requests: int, accesses: int, evictions: int) -> None:
    print(f"\n== {label}: {res['_wall_s']:.1f} s wall end to end; peak RSS: largest process "
          f"{res['_largest_peak_mib']:,.0f} MiB, process tree {res['_tree_peak_mib']:,.0f} MiB")
    print(f"{'stage':<10} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9} {'workers CPU s':>14} "
          f"{'workers MiB':>12}")
    for s in res["stages"]:
        w_cpu = "" if s["workers_cpu_s"] is None else f"{s['workers_cpu_s']:.1f}"
        w_mib = "" if s["workers_peak_rss_mib"] is None else f"{s['workers_peak_rss_mib']:,.0f}"
        print(f"{s['stage']:<10} {s['wall_s']:8.1f} {s['cpu_s']:8.1f} {s['peak_rss_mib']:9,.0f} "
              f"{w_cpu:>14} {w_mib:>12}")
    b = res["best"]
    print(f"recommendation ({res['decided_by']}): {b['replicas']} x {b['profile']} tp {b['tp']}, "
          f"HBM {b['hbm_kv_gib']:g} / DRAM {b['dram_gib']:g} / SSD {b['ssd_gib']:g} GiB, "
          f"{b['eviction']}, {'inclusive' if b['inclusive'] else 'exclusive'}, "
          f"${b['usd_per_h']:.3f}/h; simulated: {(res.get('sim') or {}).get('sim_stop_reason')}")
    print(f"curves: {res['curve_method']}")
    ver = res.get("verification") or {}
    replayed = int(ver.get("requests") or 0)
    if replayed:
        print(f"event verification: {ver['candidates']} candidates in {ver['runs']} runs over "
              f"{replayed:,} routed requests, {ver['cpu_s']:,.0f} worker CPU s (runs stopped by "
              "--verify-wall-s replay only part of theirs)")
    full = requests * int(ver.get("candidates") or 0)  # each candidate replays every request
    for speed in EVENT_REQ_S:
        print(f"  every verified candidate replayed whole = {full:,} requests: "
              f"{full / speed:,.0f} CPU s at {speed:,.0f} req/s = {full / speed / 2:,.0f} s wall "
              "on 2 workers")
    if evictions:
        n = evictions * SAMPLE_SIZES * accesses
        for speed in POLICY_ACCESSES_S:
            print(f"non-LRU screening replays ({evictions} policies x {SAMPLE_SIZES} sizes x "
                  f"{accesses:,} accesses): {n / speed:,.0f} s at {speed / 1e6:g} M accesses/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--trace", type=Path, help="An existing workload instead of synthesising.")
    ap.add_argument("--eviction", action="append", help="Eviction policies (repeat).")
    ap.add_argument("--ray", action="store_true", help="Also run with --ray (local cluster).")
    ap.add_argument("extra", nargs="*", help="More `kvplan plan` flags (after --).")
    args = ap.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} cores (other work on the machine slows every figure)")
    with tempfile.TemporaryDirectory() as tmp:
        trace = args.trace or Path(tmp) / "agent.parquet"
        if args.trace is None:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from kvplan.cli.main import main; main()",
                            "trace", "synth", "agent", "--sessions", str(args.sessions),
                            "--rate", "2", "--seed", "1", "-o", str(trace)], check=True,
                           capture_output=True)
            print(f"synthesised {trace.stat().st_size / 1e6:,.0f} MB in "
                  f"{time.perf_counter() - t0:.1f} s")
        w = load_workload(trace)
        accesses, requests = num_accesses(w), w.num_requests
        print(f"workload: {requests:,} requests, {accesses:,} prompt blocks of "
              f"{w.block_size} tokens")
        del w
        extra = [f for e in (args.eviction or []) for f in ("--eviction", e)] + args.extra
        non_lru = len([e for e in (args.eviction or ["lru", "fifo", "arc"]) if e != "lru"])
        local = run_plan(trace, extra)
        report("local process pool", local, requests, accesses, non_lru)
        if args.ray:
            remote = run_plan(trace, [*extra, "--ray"])
            report("Ray, local two-worker cluster", remote, requests, accesses, non_lru)
            same = remote["best"] == local["best"]
            print(f"\nsame recommendation with and without Ray: {same}")
    print(f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
