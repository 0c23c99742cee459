"""Trace-conversion speed bars (issue 2).

Run: python bench/bench_trace.py [--quick] [--only mooncake,azure]

Generates inputs in a temporary folder, converts each in a fresh subprocess and prints wall
time (with interpreter start-up), conversion time (after ``import kvplan.cli.main``; the
throughput is computed from it), the subprocess's peak RSS, and the load average before and
after, since a loaded machine slows every figure:

- ShareGPT-shaped JSON, 100,000 conversations (~600 MB): bar < 60 s and < 4 GB on 2 cores
- Mooncake JSONL, 1,000,000 lines: bar >= 500,000 lines/s
- Azure CSV, 1,000,000 lines: bar >= 500,000 lines/s; ``azure`` has uniform 1-8,000-token
  prompts, ``azure-real`` the lengths of the real Azure code trace (half as many blocks)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ["the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be", "by", "this", "are", "at", "from", "or", "an", "have", "not", "which", "but", "all", "were", "when", "there", "can", "more", "if", "no", "out", "so", "said", "what", "up", "its", "about", "into", "than", "them", "only", "other", "new", "some", "could", "time", "these", "two", "may", "then", "first", "any", "like", "now", "function", "return", "value", "error", "import", "class", "self", "data", "file", "print", "list", "string", "number", "Python", "code", "example", "because", "following", "however", "different", "important", "information"]


def sharegpt_file(path: Path, n: int, rng: np.random.Generator) -> None:
    """n conversations of 2-8 messages, ~6 KB each, written as one JSON array."""
    vocab = np.array(WORDS)
    with open(path, "w") as f:
        f.write("[")
        for i in range(n):
            k = 2 * int(rng.integers(1, 5))
            words = vocab[rng.integers(0, len(vocab), size=1000)]
            cuts = np.sort(rng.integers(0, 1000, size=k - 1))
            msgs = [{"from": "human" if j % 2 == 0 else "gpt", "value": " ".join(part)}
                    for j, part in enumerate(np.split(words, cuts))]
            f.write(("," if i else "") + json.dumps({"id": f"c{i}", "conversations": msgs}))
        f.write("]")


def mooncake_file(path: Path, n: int, rng: np.random.Generator) -> None:
    lens = rng.integers(1, 16384, size=n)
    with open(path, "w") as f:
        next_id = 0
        for i, length in enumerate(lens):
            nb = (int(length) + 511) // 512
            shared = min(nb, int(rng.integers(0, 8)))
            ids = list(range(shared)) + list(range(next_id + 1000, next_id + 1000 + nb - shared))
            next_id += nb
            f.write(json.dumps({"timestamp": i * 3, "input_length": int(length),
                                "output_length": int(rng.integers(1, 500)), "hash_ids": ids})
                    + "\n")


def azure_file(path: Path, n: int, rng: np.random.Generator) -> None:
    """Prompt lengths uniform in 1-8,000 tokens (mean 4,000: 250 blocks of 16 per line)."""
    _azure_csv(path, rng, rng.integers(1, 8000, size=n), rng.integers(1, 800, size=n))


def azure_real_file(path: Path, n: int, rng: np.random.Generator) -> None:
    """(prompt, output) lengths resampled from the bundled Azure code trace (mean 2,048)."""
    import polars as pl

    from kvplan.bundled import bundled_file

    real = pl.read_csv(bundled_file("traces", "AzureLLMInferenceTrace_code_2023.csv"))
    pick = rng.integers(0, real.height, size=n)
    _azure_csv(path, rng, real["ContextTokens"].to_numpy()[pick],
               real["GeneratedTokens"].to_numpy()[pick])


def _azure_csv(path: Path, rng: np.random.Generator, ctx: np.ndarray, gen: np.ndarray) -> None:
    t0 = np.datetime64("2023-11-16T18:00:00.000000")
    ts = t0 + np.cumsum(rng.integers(1, 400_000, size=len(ctx))).astype("timedelta64[us]")
    with open(path, "w") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        f.writelines(f"{str(t).replace('T', ' ')}0,{c},{g}\n" for t, c, g in zip(ts, ctx, gen, strict=True))


_RUN = ("import resource, sys, time; from kvplan.cli.main import app; t = time.perf_counter(); "
        "app(sys.argv[1:], standalone_mode=False); print(time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")


def convert(src: Path, out: Path) -> tuple[float, float, float]:
    """Seconds with and without interpreter start-up, and peak RSS (GB), of one conversion."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _RUN, "trace", "convert", str(src), "-o",
                           str(out)], check=True, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    inner, rss_kb = done.stderr.split()[-2:]
    return wall, float(inner), int(rss_kb) / 2**20


def main() -> None:
    quick = "--quick" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cores)")
    n_conv, n_lines = (10_000, 100_000) if quick else (100_000, 1_000_000)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        subprocess.run([sys.executable, "-c", _RUN, "trace", "info", "--json"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm numba
        cases = [("sharegpt", n_conv, sharegpt_file, "conversations"),
                 ("mooncake", n_lines, mooncake_file, "lines"),
                 ("azure", n_lines, azure_file, "lines"),
                 ("azure-real", n_lines, azure_real_file, "lines")]
        print(f"{'input':<11} {'items':>10} {'size MB':>9} {'wall s':>8} {'convert s':>10} "
              f"{'items/s':>11} {'peak RSS GB':>12}")
        for name, n, make, unit in cases:
            if only is not None and name not in only:
                continue
            src = tmp / f"{name}.in"
            make(src, n, rng)
            wall, inner, rss = convert(src, tmp / f"{name}.parquet")
            print(f"{name:<11} {n:>10,} {src.stat().st_size / 1e6:>9.0f} {wall:>8.1f} "
                  f"{inner:>10.1f} {n / inner:>11,.0f} {rss:>12.2f}  ({unit})")
            src.unlink()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
