"""The long fuzz run over every reader (issue 13), and small inputs that declare huge sizes.

Run: python bench/bench_fuzz.py [--cases 100000] [--seed 0] [--cli-every 20] [--no-huge]

Cases come from tests/fuzz_inputs.py (the same mutations as the default-suite fuzz test,
driven by a seeded ``random.Random``), cycling through every input kind: each trace format,
workload Parquet, hardware profiles, price tables, model configs. Every case must read into a
valid result or fail with kvplan's one-line error naming the file; every ``--cli-every``-th
trace case also runs ``kvplan trace convert`` through typer's runner, which must exit 0 or 2
and leave no output or temporary file on failure. The address space is capped at 8 GiB, so a
runaway allocation shows as a MemoryError (an unexpected exception) instead of hurting the
machine. Failing inputs are saved in a temporary folder (printed) for reproduction.

Printed: cases per kind (read / refused / unexpected), wall time, the slowest case, peak RSS,
and the load average (a loaded machine slows every figure). ``--huge`` (default) then converts,
each in a fresh subprocess: one ~200 MB conversation, a 57-byte BurstGPT file and a ~700-byte
Azure file declaring 2**31-token requests, and a small Azure file at the per-request limit,
printing wall time and peak RSS for each.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import fuzz_inputs as F  # noqa: E402

ADDRESS_SPACE = 8 << 30


def fuzz(n: int, seed: int, cli_every: int, failures: Path) -> int:
    from typer.testing import CliRunner

    from kvplan.cli.main import app

    rng = random.Random(seed)
    ch = F.Chooser.from_random(rng)
    folder = Path(tempfile.mkdtemp(prefix="kvplan-fuzz-"))
    tally: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    unexpected = 0
    slowest = (0.0, "")
    runner = CliRunner()
    t0 = time.perf_counter()
    for i in range(n):
        kind = F.KINDS[i % len(F.KINDS)]
        case = F.make_case(kind, ch)
        path = F.write_case(case, folder, i % 64)
        t = time.perf_counter()
        outcome, problem = F.classify_case(case, path)
        if problem is None and kind in F.TRACE_FORMATS and i % cli_every == 0:
            problem = _cli_problem(runner, app, case, path, folder)
        dt = time.perf_counter() - t
        slowest = max(slowest, (dt, kind))
        if problem:
            outcome = "unexpected"
            unexpected += 1
            failures.mkdir(exist_ok=True)
            (failures / f"{i}_{path.name}").write_bytes(case.data)
            if unexpected <= 10:
                print(f"UNEXPECTED case {i} ({kind}, fmt {case.fmt}): {problem}")
        tally[kind][outcome] += 1
        if (i + 1) % 10_000 == 0:
            print(f"  {i + 1:,} cases, {time.perf_counter() - t0:.0f} s", flush=True)
    wall = time.perf_counter() - t0
    print(f"\n{'kind':<18}{'cases':>9}{'read':>9}{'refused':>9}{'unexpected':>12}")
    for kind in F.KINDS:
        c = tally[kind]
        print(f"{kind:<18}{sum(c.values()):>9,}{c['read']:>9,}{c['refused']:>9,}"
              f"{c['unexpected']:>12,}")
    print(f"\ncases: {n:,}  wall: {wall:.1f} s ({n / wall:,.0f} cases/s)  unexpected: "
          f"{unexpected}  slowest case: {slowest[0]:.2f} s ({slowest[1]})  peak RSS: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return unexpected


def _cli_problem(runner, app, case: F.Case, path: Path, folder: Path) -> str | None:
    out = folder / "cli_out.parquet"
    out.unlink(missing_ok=True)
    r = runner.invoke(app, ["trace", "convert", str(path), "-o", str(out), "--format",
                            case.fmt], env={"COLUMNS": "120"})
    lines = [x for x in r.output.splitlines() if x.strip()]
    if r.exit_code not in (0, 2):
        return f"CLI exit {r.exit_code}: {r.output[-300:]!r}"
    if r.exit_code == 2 and (len(lines) != 1 or out.exists()):
        return f"CLI error not one line or output left: {r.output[:300]!r}"
    if list(folder.glob(".*.tmp")):
        return "temporary file left behind"
    return None


HUGE = """
import resource, sys, time
from kvplan.errors import KvplanError
from kvplan.trace.convert import convert_trace
t = time.perf_counter()
try:
    w = convert_trace(sys.argv[1], sys.argv[2])
    result = f"{w.num_requests:,} requests"
except KvplanError as exc:
    result = "refused: " + str(exc).split(": ", 1)[1][:110]
print(f"{time.perf_counter() - t:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}"
      f" {result}")
"""


def huge(folder: Path) -> None:
    inputs = {
        "one conversation, ~200 MB": _conversation(folder / "conv200.json", 200_000_000),
        "one conversation, ~60 MB (12 M tokens)": _conversation(folder / "conv60.json",
                                                                60_000_000),
        "BurstGPT 57 bytes, 2**31 tokens": _write(
            folder / "b.csv", "Timestamp,Request tokens,Response tokens\n0,2147483648,1\n"),
        "Azure ~700 bytes, 2**31-token rows": _write(
            folder / "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
                f"2023-11-16 18:17:{i:02d}.5,2147483647,2147483647\n" for i in range(13))),
        "Azure 20 rows at the 2**24 limit": _write(
            folder / "l.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
                f"2023-11-16 18:17:{i:02d}.5,16777216,1\n" for i in range(20))),
    }
    print(f"\n{'input':<40}{'bytes':>13}{'wall s':>8}{'peak RSS':>10}  result")
    for label, path in inputs.items():
        r = subprocess.run([sys.executable, "-c", HUGE, str(path), str(folder / "o.parquet")],
                           capture_output=True, text=True, env=os.environ | {
                               "PYTHONPATH": str(ROOT)})
        if r.returncode:
            print(f"{label:<40} FAILED: {r.stderr[-300:]}")
            continue
        secs, rss_kib, result = r.stdout.strip().split(" ", 2)
        print(f"{label:<40}{path.stat().st_size:>13,}{float(secs):>8.2f}"
              f"{int(rss_kib) / 2**20:>8.2f} GB  {result}")


def _conversation(path: Path, size: int) -> Path:
    """One ShareGPT conversation of 20 equal messages, ``size`` bytes of English-like text."""
    words = ["the", "of", "and", "to", "in", "is", "that", "for", "it", "with", "function",
             "return", "value", "error", "import", "class", "self", "data", "file", "print"]
    rng = random.Random(0)
    text = " ".join(rng.choice(words) for _ in range(size // 20 // 5))
    msgs = [{"from": "human" if i % 2 == 0 else "gpt", "value": text} for i in range(20)]
    path.write_text(json.dumps([{"id": "big", "conversations": msgs}]))
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cli-every", type=int, default=20)
    ap.add_argument("--no-huge", action="store_true")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores")
    if not args.no_huge:
        huge(Path(tempfile.mkdtemp(prefix="kvplan-huge-")))
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    failures = Path(tempfile.gettempdir()) / "kvplan-fuzz-failures"
    bad = fuzz(args.cases, args.seed, args.cli_every, failures)
    if bad:
        print(f"failing inputs saved in {failures}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
