"""A real vLLM run replayed by kvplan: mean TTFT, TPOT and end-to-end latency, measured vs predicted.

The run (../shared/engine_runs/vllm-0.19_rtx4090_llama-3.1-8b, from LLMServingSim, MIT):
vLLM 0.19.0, Llama-3.1-8B bf16, one RTX 4090, 300 ShareGPT requests, max_num_batched_tokens
2048 (chunked prefill), max_num_seqs 256, block size 16, 2,588 GPU KV blocks. The workload is
rebuilt from ``requests.jsonl``: arrivals = differences of ``arrival_time`` (the client's send
clock), input and output token counts, no shared prefixes (the file has no token ids). The
measured latencies use the engine's clock: TTFT = first_token_ts - queued_ts, TPOT =
(last_token_ts - first_token_ts) / (output_toks - 1), end-to-end = last_token_ts - queued_ts.
kvplan replays it in event mode with the run's settings on a datasheet profile (default the
bundled ``rtx-4090``, whose efficiencies are fitted to AIConfigurator's data-centre GPUs, not to
this run). Bar: each mean within 10 %.

    python bench/bench_engine_run.py [--run DIR] [--profile rtx-4090]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from kvplan.sim.config import ReplayConfig
from kvplan.sim.replay import run_replay
from kvplan.trace.table import build_workload, content_free_columns
from kvplan.workload import Workload, WorkloadMeta

RUN = Path(__file__).resolve().parents[3] / "shared" / "engine_runs" / \
    "vllm-0.19_rtx4090_llama-3.1-8b"
BAR = 0.10


def read_run(folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Per-request columns of requests.jsonl and the run's meta.json."""
    rows = [json.loads(line) for line in (folder / "requests.jsonl").read_text().splitlines()
            if line.strip()]
    cols = {k: np.array([r[k] for r in rows], dtype=np.float64)
            for k in ("input_toks", "output_toks", "arrival_time", "queued_ts",
                      "first_token_ts", "last_token_ts")}
    return cols, json.loads((folder / "meta.json").read_text())


def measured(c: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean TTFT, TPOT (requests with > 1 output token) and end-to-end latency, seconds."""
    multi = c["output_toks"] > 1
    tpot = (c["last_token_ts"] - c["first_token_ts"])[multi] / (c["output_toks"][multi] - 1)
    return {"ttft": float(np.mean(c["first_token_ts"] - c["queued_ts"])),
            "tpot": float(np.mean(tpot)),
            "e2e": float(np.mean(c["last_token_ts"] - c["queued_ts"]))}


def workload(c: dict[str, np.ndarray], block_size: int) -> Workload:
    arrival = c["arrival_time"] - c["arrival_time"].min()
    cols = content_free_columns(arrival, c["input_toks"].astype(np.int64),
                                c["output_toks"].astype(np.int64), block_size)
    meta = WorkloadMeta(source_format="engine-run", source_file="requests.jsonl",
                        block_size=block_size, tokenizer="none", has_content=False)
    return build_workload(cols, meta)


def config(meta: dict, profile: str, kv_bytes_per_token: int) -> ReplayConfig:
    """The run's scheduler and KV settings as a ReplayConfig (HBM = its GPU KV blocks)."""
    kw, kv = meta["engine_kwargs"], meta["kv_cache"]
    hbm_gib = kv["num_gpu_blocks"] * kv["block_size"] * kv_bytes_per_token / 2**30
    return ReplayConfig(model="llama-3.1-8b", profile=profile, hbm_kv_gib=hbm_gib,
                        max_batched_tokens=kw["max_num_batched_tokens"],
                        max_seqs=kw["max_num_seqs"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=RUN)
    ap.add_argument("--profile", default="rtx-4090")
    args = ap.parse_args()
    cols, meta = read_run(args.run)
    w = workload(cols, meta["kv_cache"]["block_size"])
    cfg = config(meta, args.profile, 131_072)
    t0 = time.perf_counter()
    res = run_replay(w, cfg)
    wall = time.perf_counter() - t0
    req = res.requests.filter(res.requests["finished"]) if "finished" in res.requests.columns \
        else res.requests
    sim = {"ttft": float(req["ttft_s"].mean()), "tpot": float(req["tpot_s"].drop_nulls().mean()),
           "e2e": float(req["e2e_s"].mean())}
    real = measured(cols)
    print(f"{args.run.name}: {w.num_requests} requests, profile {args.profile}, "
          f"max_batched_tokens {cfg.max_batched_tokens}, HBM KV {cfg.hbm_kv_gib:.3f} GiB; "
          f"replay {wall:.2f} s, load average {os.getloadavg()[0]:.2f}")
    print(f"{'metric':>6} {'vLLM ms':>10} {'kvplan ms':>10} {'error':>8}")
    worst = 0.0
    for k in ("ttft", "tpot", "e2e"):
        err = sim[k] / real[k] - 1
        worst = max(worst, abs(err))
        print(f"{k:>6} {real[k] * 1e3:10.1f} {sim[k] * 1e3:10.1f} {err:+8.1%}")
    print(f"largest error {worst:.1%} ({'within' if worst <= BAR else 'outside'} the "
          f"{BAR:.0%} bar)")


if __name__ == "__main__":
    main()
