"""Benchmark: `kvplan plan` at production scale, end to end from the CLI, stage by stage.

Bar (issue #15): on the synthetic agent workload `kvplan trace synth agent --sessions 5000
--rate 2 --seed 1` (74,737 requests, 48 M prompt blocks of 16 tokens) the plan finishes in
<= 10 minutes on 2 cores with <= 4 GB peak RSS; with --ray on a local two-worker cluster it
gives the same recommendation. Prints every stage's wall time, CPU time and peak RSS (the
planner's --profile-stages), memory sampled from /proc every SAMPLE_S over the plan process
and its workers (local pool processes, or Ray's worker processes; Ray's own daemons are shown
apart): the peak of the SUM of their RSS at one instant (the bar's figure), the same in PSS,
and the largest single process, each with the stage it fell in; the load average, and what event verification and the non-LRU
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
from dataclasses import dataclass
from pathlib import Path

from kvplan.plan.policy_scale import SAMPLE_SIZES
from kvplan.plan.stream import num_accesses
from kvplan.trace import load_workload

EVENT_REQ_S = (3780.0, 2000.0)
"""Event-replay speeds on this workload: today's (bench_replay.py, load avg 1.9), and the
issue's target."""
POLICY_ACCESSES_S = (0.1e6, 8e6)
"""Timing-free non-LRU replay speeds: today's Python classes, and the compiled target."""
PAGE = os.sysconf("SC_PAGE_SIZE")


SAMPLE_S = 0.2
"""Seconds between two samples of the process tree's memory."""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def is_ray_daemon(cmd: str) -> bool:
    """A Ray daemon (GCS server, raylet, dashboard / runtime-env agents, log monitor), not a
    worker: workers retitle themselves ``ray::IDLE`` / ``ray::<task>`` (before that their
    script is default_worker.py, which the raylet's own arguments also name); the agents
    retitle themselves ``ray::...Agent``."""
    args = cmd.split(" ")
    if args[0].startswith("ray::"):
        return args[0].endswith("Agent")
    if any(a.endswith("default_worker.py") for a in args[:2]):
        return False
    return "/ray/" in cmd or args[0].rsplit("/", 1)[-1] in ("raylet", "gcs_server")


def _pss_mib(pid: int) -> float | None:
    """Proportional set size (MiB): shared pages split among the processes that map them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class TreeSample:
    """Resident memory (MiB) of the plan process and its workers at one instant."""

    t: float
    rss_sum: float
    pss_sum: float
    largest: float
    daemons: float
    """Ray's own daemons (not in the sums)."""
    processes: int
    members: list[tuple[str, float]]
    """(process name, RSS MiB) of each process in the sums, largest first."""


def _name(cmd: str) -> str:
    """A short name: Ray's process title, a pool worker, or the plan process."""
    if cmd.startswith("ray::"):
        return cmd.split(" ", 1)[0]
    if "multiprocessing" in cmd:
        return "resource_tracker" if "resource_tracker" in cmd else "pool worker"
    return "plan" if " plan " in cmd else cmd.split(" ", 1)[0].rsplit("/", 1)[-1]


def tree_sample(root: int, t: float) -> TreeSample:
    """RSS / PSS of ``root`` and its descendants now (Linux /proc), Ray's daemons apart."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    todo, seen = [root], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children.get(p, [])
    rss_sum = pss_sum = largest = daemons = 0.0
    members = []
    for p in seen:
        try:
            rss = int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE / 2**20
        except (OSError, ValueError, IndexError):
            continue
        cmd = _cmdline(p)
        if p != root and is_ray_daemon(cmd):
            daemons += rss
            continue
        pss = _pss_mib(p)
        rss_sum, largest = rss_sum + rss, max(largest, rss)
        pss_sum += rss if pss is None else pss
        members.append(("plan" if p == root else _name(cmd), rss))
    members.sort(key=lambda m: -m[1])
    return TreeSample(t, rss_sum, pss_sum, largest, daemons, len(members), members)


def stage_at(res: dict, t: float) -> str:
    """The plan stage running ``t`` s after the plan started: stages are contiguous and the
    last ("report") closes just before the JSON is written, at res["_stdout_s"]."""
    end = res["_stdout_s"]
    for s in reversed(res.get("stages") or []):
        if t >= end - s["wall_s"]:
            return s["stage"]
        end -= s["wall_s"]
    return "start-up"


def run_plan(trace: Path, extra: list[str]) -> dict:
    """`kvplan plan --json --profile-stages` in a subprocess; every SAMPLE_S the resident
    memory of its process tree is summed over the processes at that instant."""
    cmd = [sys.executable, "-c", "from kvplan.cli.main import main; main()", "plan",
           "--trace", str(trace), "--json", "--profile-stages", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[TreeSample] = []
    first_out: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_S):
            samples.append(tree_sample(proc.pid, time.perf_counter() - t0))

    def read_out(buf: list[str]) -> None:
        head = proc.stdout.read(1)
        first_out.append(time.perf_counter() - t0)
        buf.append(head + proc.stdout.read())

    out_buf: list[str] = []
    threads = [threading.Thread(target=sample, daemon=True),
               threading.Thread(target=read_out, args=(out_buf,), daemon=True)]
    for th in threads:
        th.start()
    err = proc.stderr.read()
    threads[1].join()
    proc.wait()
    stop.set()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"kvplan plan failed (exit {proc.returncode}): {err.strip()[-500:]}")
    res = json.loads(out_buf[0]) | {"_wall_s": wall, "_stdout_s": first_out[0]}
    empty = TreeSample(0.0, 0.0, 0.0, 0.0, 0.0, 0, [])
    return res | {"_peak_sum": max(samples, key=lambda x: x.rss_sum, default=empty),
                  "_peak_pss": max(samples, key=lambda x: x.pss_sum, default=empty),
                  "_peak_largest": max(samples, key=lambda x: x.largest, default=empty),
                  "_peak_daemons": max((x.daemons for x in samples), default=0.0)}


def memory_lines(res: dict) -> list[str]:
    """The simultaneous and single-process peaks, each with the stage it fell in."""
    s, p, g = res["_peak_sum"], res["_peak_pss"], res["_peak_largest"]
    lines = [f"peak of the SUM of RSS at one instant (plan process + workers, sampled every "
             f"{SAMPLE_S:g} s): {s.rss_sum:,.0f} MiB = {s.rss_sum / 1024:.2f} GiB, "
             f"{s.processes} processes, at {s.t:.0f} s in stage {stage_at(res, s.t)}: "
             + ", ".join(f"{n} {m:,.0f}" for n, m in s.members),
             f"  same, PSS (shared pages such as memory-mapped sub-workloads counted once): "
             f"{p.pss_sum:,.0f} MiB at {p.t:.0f} s in stage {stage_at(res, p.t)}",
             f"largest single process: {g.largest:,.0f} MiB at {g.t:.0f} s in stage "
             f"{stage_at(res, g.t)}"]
    if res["_peak_daemons"]:
        lines.append(f"Ray's own daemons (GCS, raylet, agents; not in the sums): peak "
                     f"{res['_peak_daemons']:,.0f} MiB")
    return lines


def report(label: str, res: dict, requests: int, accesses: int, evictions: int) -> None:
    print(f"\n== {label}: {res['_wall_s']:.1f} s wall end to end")
    for line in memory_lines(res):
        print(line)
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
