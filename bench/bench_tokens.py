"""Token counts: the estimator against real tokenizers, and real tokenizers against recorded usage.

    python bench/bench_tokens.py [PATH/TO/tokenizer.json ...]   # needs kvplan[tokenizers]
    python bench/bench_tokens.py --fit                          # re-fit the estimator's widths

1. For every named tokenizer installed (kvplan.trace.tokenizers) and any tokenizer.json given,
   on each bundled text set (every message of the chat, MT-Bench and agent samples): real and
   estimated token totals, their ratio, and the median and 90th-percentile relative error per
   message (messages under 20 real tokens skipped).
2. cl100k_base (GPT-4's encoding) with OpenAI's chat framing against prompt tokens that OpenAI
   recorded: the GPT-4 SWE-agent run's ``tokens_sent`` (12 calls) and the ``usage`` of
   traces/openai_usage_sample.jsonl (per call); the estimator beside it.
3. ``--fit``: grid search of the estimator's piece widths minimising the worst total error over
   every tokenizer and text set (the widths in kvplan/trace/tokens.py came from this).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from kvplan.bundled import bundled_file
from kvplan.trace.chat import record_to_conversation
from kvplan.trace.conversation import conversations_to_requests
from kvplan.trace.options import ReadOptions
from kvplan.trace.read import read_trace
from kvplan.trace.tokenizers import NAMED
from kvplan.trace.tokens import _WIDTH, TextTokenizer, _estimate

SWE_GPT4 = "sweagent_gpt4_pydicom__pydicom-1458.traj.json"
SWE_DEMO = "sweagent_demo_marshmallow-code__marshmallow-1867.traj.json"


def sample_texts() -> dict[str, list[str]]:
    """Every message text of the bundled chat, MT-Bench and agent samples."""
    def traces(name: str) -> str:
        return bundled_file("traces", name).read_text()

    chat = json.loads(traces("fastchat_dummy_conversation.json"))
    mt = [json.loads(line) for line in traces("fastchat_mt_bench_question.jsonl").splitlines()]
    agent = [m["content"] for f in (SWE_DEMO, SWE_GPT4) for m in json.loads(traces(f))["history"]]
    return {
        "chat (ShareGPT)": [m["value"] for c in chat for m in c["conversations"]],
        "MT-Bench questions": [t for q in mt for t in q["turns"]],
        "agent (SWE-agent x2)": agent,
    }


def installed() -> list[str]:
    return [n for n, t in NAMED.items() if all(importlib.util.find_spec(m) for m in t.modules)]


def estimator_error(specs: list[str]) -> None:
    texts, estimator = sample_texts(), TextTokenizer()
    print(f"{'tokenizer':14} {'text set':22} {'texts':>6} {'real tok':>9} {'est tok':>9} "
          f"{'est/real':>9} {'median |err|':>13} {'p90 |err|':>10}")
    for spec in specs:
        real = TextTokenizer(spec)
        for name, batch in texts.items():
            est, n_real = estimator.encode(batch)[1], real.encode(batch)[1]
            keep = n_real >= 20
            rel = np.abs(est[keep] - n_real[keep]) / n_real[keep]
            print(f"{Path(spec).name:14} {name:22} {len(batch):6d} {n_real.sum():9,d} "
                  f"{est.sum():9,d} {est.sum() / n_real.sum():9.3f} {np.median(rel):13.1%} "
                  f"{np.percentile(rel, 90):10.1%}")


def recorded_usage() -> None:
    print("\nprompt tokens recorded by OpenAI vs counted (cl100k_base + OpenAI framing, and the "
          "estimator)")
    for spec in ("cl100k_base", None):
        w = read_trace(bundled_file("traces", SWE_GPT4), "agent", ReadOptions(tokenizer=spec))
        sent = int(w.meta.extra["tokens_sent_recorded"])
        got = int(w.table.column("input_tokens").to_numpy().sum())
        print(f"  SWE-agent GPT-4 run, 12 calls ({spec or 'estimator'}): recorded {sent:,}, "
              f"counted {got:,}, error {got / sent - 1:+.2%}")
    path = bundled_file("traces", "openai_usage_sample.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    recorded = np.array([r["usage"]["prompt_tokens"] for r in records])
    for spec in ("cl100k_base", None):
        convs = [record_to_conversation(r, path, f"record {i}", i + 1)
                 for i, r in enumerate(records)]
        req = conversations_to_requests(convs, TextTokenizer(spec), 16)
        last = np.r_[np.flatnonzero(np.diff(req.conversation)), len(req.conversation) - 1]
        got = req.input_tokens[last]
        print(f"  openai_usage_sample.jsonl, {len(records)} calls ({spec or 'estimator'}): "
              f"recorded {recorded.sum():,}, counted {got.sum():,}, error "
              f"{got.sum() / recorded.sum() - 1:+.2%}, worst call {np.max(np.abs(got / recorded - 1)):.2%}")


def fit() -> None:
    texts = sample_texts()
    specs = installed()
    real = {(s, n): TextTokenizer(s).encode(t)[1].sum() for s in specs for n, t in texts.items()}
    data = {}
    for name, batch in texts.items():
        encoded = [t.encode("utf-8", errors="replace") for t in batch]
        offsets = np.r_[0, np.cumsum([len(b) for b in encoded])].astype(np.int64)
        data[name] = (np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)
    results = []
    for letters, digits, punct, spaces, newline in itertools.product(
            range(5, 15), (2, 3), range(2, 7), (8, 16, 32), (2, 4, 8)):
        width = np.array([letters, digits, punct, spaces, newline, _WIDTH[5]], dtype=np.int64)
        errors = [_estimate(*data[n], width)[1].sum() / real[(s, n)] - 1
                  for n in texts for s in specs]
        results.append((max(abs(e) for e in errors), tuple(width[:5].tolist()), errors))
    results.sort(key=lambda r: r[0])
    print(f"fitted on {', '.join(specs)}; current widths {tuple(_WIDTH[:5].tolist())}")
    print("worst |err|  widths (letters, digits, punct, spaces, newline)")
    for worst, width, _ in results[:5]:
        print(f"{worst:10.2%}   {width}")


def main(args: list[str]) -> None:
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if args == ["--fit"]:
        fit()
        return
    specs = installed() + args
    if not specs:
        sys.exit("no tokenizer installed: pip install 'kvplan[tokenizers]', or pass a "
                 "tokenizer.json")
    estimator_error(specs)
    if "cl100k_base" in specs:
        recorded_usage()


if __name__ == "__main__":
    main(sys.argv[1:])
