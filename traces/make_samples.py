"""Regenerate the synthesized samples in this folder (deterministic): python traces/make_samples.py

Writes burstgpt_sample.csv, dynamo_agentic_mooncake_sample.jsonl, openai_tool_calls_sample.jsonl
the tiny conversation in three forms (tiny_chat.sharegpt.json, tiny_chat.openai.jsonl,
tiny_chat.mooncake.jsonl) and openai_usage_sample.jsonl (needs bpe-openai). See README.md for
what each imitates.
"""

import csv
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def burstgpt(rng):
    t = np.cumsum(rng.gamma(0.25, 4.0, 400))  # bursty: cv 2, mean gap 1 s
    rows = []
    for i, ts in enumerate(t):
        model = "ChatGPT" if rng.random() < 0.8 else "GPT-4"
        req = int(rng.lognormal(6.0, 1.0))
        resp = 0 if rng.random() < 0.03 else int(rng.lognormal(5.0, 0.8)) + 1
        log = "Conversation log" if rng.random() < 0.7 else "API log"
        rows.append([round(float(ts), 3), model, req, resp, req + resp, log])
    with open(HERE / "burstgpt_sample.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens",
                    "Log Type"])
        w.writerows(rows)


def dynamo_agentic(rng):
    rows, t = [], 0.0
    system = list(range(6))  # 6 x 512-token system prompt + tool schema, shared by all runs
    next_id = 100
    for s in range(4):
        ctx = list(system)
        start = s * 7000.0
        t = start
        prev = None
        for turn in range(5):
            grow = int(rng.integers(1, 4))
            ctx = ctx + list(range(next_id, next_id + grow))
            next_id += grow
            tail = int(rng.integers(1, 512))
            input_length = (len(ctx) - 1) * 512 + tail
            tool_ms = None if turn == 0 else round(float(rng.lognormal(np.log(1500), 1.0)), 1)
            delay = None if turn == 0 else round(float(rng.uniform(50, 300)), 1)
            if turn:
                t += 40.0 * rows[-1]["output_length"] + tool_ms + delay
            rid = f"run{s}-call{turn}"
            rows.append({"request_id": rid, "session_id": f"run{s}", "timestamp": round(t, 1),
                         "input_length": input_length,
                         "output_length": int(rng.integers(20, 400)), "hash_ids": ctx,
                         "delay": delay, "wait_for": [prev] if prev else [],
                         "tool_wait_ms": tool_ms})
            prev = rid
    rows.sort(key=lambda r: r["timestamp"])
    _jsonl(HERE / "dynamo_agentic_mooncake_sample.jsonl", rows)


SYSTEM = ("You are a careful software agent working in a Linux sandbox. " * 4
          + "".join(f"Rule {i}: before editing file number {i}, read it, explain the change, "
                    f"then run the tests for module {i}.\n" for i in range(1, 61)))
TOOLS = [{"type": "function", "function": {
    "name": name, "description": desc,
    "parameters": {"type": "object", "properties": {"arg": {"type": "string"}},
                   "required": ["arg"]}}}
    for name, desc in [("bash", "Run a shell command and return stdout and stderr."),
                       ("open_file", "Open a file and show 100 lines around a line number."),
                       ("edit", "Replace a line range of the open file with new text."),
                       ("submit", "Submit the current diff as the solution.")]]


def openai_tool_calls(rng):
    tasks = ["Fix the off-by-one error in pagination.", "Make the CSV parser accept BOMs.",
             "Add a timeout to the HTTP client."]
    records = []
    for k, task in enumerate(tasks):
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]
        for step in range(3):
            cid = f"call_{k}_{step}"
            tool = ["bash", "open_file", "edit"][step]
            msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": cid, "type": "function",
                 "function": {"name": tool, "arguments": json.dumps({"arg": f"step {step}"})}}]})
            out = " ".join(f"line{j}: value={int(rng.integers(1000))}" for j in range(30))
            msgs.append({"role": "tool", "tool_call_id": cid, "content": out})
        msgs.append({"role": "assistant", "content": f"Done: {task} Tests pass."})
        records.append({"id": f"run{k}", "tools": TOOLS, "messages": msgs})
    _jsonl(HERE / "openai_tool_calls_sample.jsonl", records)


def tiny_chat():
    """One conversation, 3 answers, written as ShareGPT, OpenAI messages and Mooncake."""
    turns = [("system", SYSTEM),
             ("user", "Which rule applies before editing file number 7?"),
             ("assistant", "Rule 7: read the file, explain the change, then run the tests "
                           "for module 7. " * 3),
             ("user", "And what should I do after the tests pass? Please answer in detail. " * 20),
             ("assistant", "Submit the diff with a short summary of the change. " * 5),
             ("user", "Thanks. Summarise the rules for files 1 to 60 in one sentence."),
             ("assistant", "Read, explain, edit, then test the matching module, every time.")]
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    sharegpt = [{"id": "tiny", "conversations": [{"from": names[r], "value": v}
                                                   for r, v in turns]}]
    (HERE / "tiny_chat.sharegpt.json").write_text(json.dumps(sharegpt, indent=1) + "\n")
    _jsonl(HERE / "tiny_chat.openai.jsonl",
           [{"id": "tiny", "messages": [{"role": r, "content": v} for r, v in turns]}])
    from kvplan.trace.options import ReadOptions
    from kvplan.trace.sharegpt import read_sharegpt

    w = read_sharegpt(HERE / "tiny_chat.sharegpt.json", ReadOptions(block_size=512))
    ids: dict[int, int] = {}
    rows = []
    for r in w.table.to_pylist():
        hids = [ids.setdefault(h, len(ids)) for h in r["block_hashes"]]
        if r["input_tokens"] % 512:
            hids.append(1000 + r["request_id"])
        rows.append({"timestamp": round(r["arrival_s"] * 1000), "input_length": r["input_tokens"],
                     "output_length": r["output_tokens"], "hash_ids": hids,
                     "session_id": "tiny"})
    _jsonl(HERE / "tiny_chat.mooncake.jsonl", rows)


def openai_usage():
    """OpenAI chat calls with ``usage.prompt_tokens``, counted as OpenAI's cookbook does for
    gpt-4-0613 (cl100k_base): 3 tokens per message + its role and content, 3 to prime the
    reply. Each record is one call: its request messages, then the reply. Needs bpe-openai."""
    import bpe_openai

    enc = bpe_openai.get_encoding("cl100k_base")
    chats = [
        [("system", "You are a concise assistant for a database team."),
         ("user", "What does VACUUM FULL do in PostgreSQL 16, and when should I avoid it?"),
         ("assistant", "VACUUM FULL rewrites the whole table into a new file, returning space "
                       "to the OS. It takes an ACCESS EXCLUSIVE lock, so avoid it on busy "
                       "tables; plain VACUUM or pg_repack is usually enough."),
         ("user", "Give me a query that lists the 5 largest tables."),
         ("assistant", "SELECT relname, pg_size_pretty(pg_total_relation_size(relid))\n"
                       "FROM pg_catalog.pg_statio_user_tables\n"
                       "ORDER BY pg_total_relation_size(relid) DESC LIMIT 5;")],
        [("system", "You are a concise assistant for a database team."),
         ("user", "Explain the difference between a B-tree and a BRIN index in two lines."),
         ("assistant", "A B-tree indexes every row and serves point and range lookups. A BRIN "
                       "index stores min/max per block range: tiny, good for naturally "
                       "ordered data such as timestamps.")],
        [("user", "Traduis en français : « The cache hit ratio fell to 37% after the "
                  "deploy at 14:05 UTC. »"),
         ("assistant", "Le taux de succès du cache est tombé à 37 % après le déploiement de "
                       "14 h 05 UTC."),
         ("user", "Et en allemand ?"),
         ("assistant", "Die Cache-Trefferquote fiel nach dem Deployment um 14:05 UTC auf 37 %.")],
    ]
    rows = []
    for c, chat in enumerate(chats):
        for k, (role, reply) in enumerate(chat):
            if role != "assistant":
                continue
            request = chat[:k]
            prompt = sum(3 + len(enc.encode_ordinary(r)) + len(enc.encode_ordinary(t))
                         for r, t in request) + 3
            rows.append({"id": f"chat{c}-call{len(rows)}", "model": "gpt-4-0613",
                         "messages": [{"role": r, "content": t} for r, t in chat[:k + 1]],
                         "usage": {"prompt_tokens": prompt,
                                   "completion_tokens": len(enc.encode_ordinary(reply))}})
    _jsonl(HERE / "openai_usage_sample.jsonl", rows)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    rng = np.random.default_rng(2024)
    burstgpt(rng)
    dynamo_agentic(rng)
    openai_tool_calls(rng)
    tiny_chat()
    openai_usage()
