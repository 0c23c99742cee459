"""Error of the built-in token estimator against a real tokenizer, on the bundled text samples.

    python bench/bench_tokens.py PATH/TO/tokenizer.json

Any local Hugging Face ``tokenizer.json`` works (Llama, Qwen, Mistral...); nothing is
downloaded. For each sample it prints the total token count of both, their ratio, and the
median and 90th-percentile relative error per message (messages under 20 real tokens skipped).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from kvplan.bundled import bundled_file
from kvplan.trace.tokens import TextTokenizer


def sample_texts() -> dict[str, list[str]]:
    """Every message text of the bundled chat, MT-Bench and agent samples."""
    chat = json.loads(bundled_file("traces", "fastchat_dummy_conversation.json").read_text())
    mt = [json.loads(line) for line in
          bundled_file("traces", "fastchat_mt_bench_question.jsonl").read_text().splitlines()]
    swe = json.loads(bundled_file(
        "traces", "sweagent_demo_marshmallow-code__marshmallow-1867.traj.json").read_text())
    return {
        "fastchat chat (ShareGPT)": [m["value"] for c in chat for m in c["conversations"]],
        "MT-Bench questions": [t for q in mt for t in q["turns"]],
        "SWE-agent trajectory": [m["content"] for m in swe["history"]],
    }


def main(tokenizer_json: Path) -> None:
    estimator, real = TextTokenizer(), TextTokenizer(tokenizer_json)
    print(f"estimator vs {tokenizer_json}")
    print(f"{'sample':26} {'texts':>6} {'real tok':>9} {'est tok':>9} {'est/real':>9} "
          f"{'median |err|':>13} {'p90 |err|':>10}")
    for name, texts in sample_texts().items():
        est, n_real = estimator.encode(texts)[1], real.encode(texts)[1]
        keep = n_real >= 20
        rel = np.abs(est[keep] - n_real[keep]) / n_real[keep]
        print(f"{name:26} {len(texts):6d} {n_real.sum():9,d} {est.sum():9,d} "
              f"{est.sum() / n_real.sum():9.3f} {np.median(rel):13.1%} "
              f"{np.percentile(rel, 90):10.1%}")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_file():
        sys.exit("usage: python bench/bench_tokens.py PATH/TO/tokenizer.json")
    main(Path(sys.argv[1]))
