"""Agent traces: SWE-agent ``.traj``, OpenAI chat logs with tool calls, Dynamo agentic_mooncake.

Every LLM call of an agent run is a request whose prompt is the run's history so far:

- SWE-agent ``.traj`` (one JSON document): ``history`` of role/content messages; entries with
  ``message_type: observation`` are tool output. ``info.model_stats.tokens_sent`` (when not
  zeroed) is kept in the metadata next to the estimate, as ground truth for the estimator.
- OpenAI chat logs (JSON array or JSONL, one agent run per record): ``messages`` with
  ``tool_calls`` and ``role: tool``, optional ``tools`` schema (rendered into the system prompt).
- Dynamo agentic_mooncake JSONL (``hash_ids`` plus ``session_id``/``tool_wait_ms``): read by
  :mod:`kvplan.trace.mooncake`, which keeps its timestamps and tool waits.

Logs without timestamps get synthesized arrivals; a call right after a tool result waits a
tool time (``--tool-time``), recorded in ``tool_wait_s``. Runs that share a system prompt and
tool schema share those blocks, because block hashes depend on content only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from kvplan.errors import InputError
from kvplan.trace.arrivals import synthesize
from kvplan.trace.chat import messages_to_conversation, record_to_conversation
from kvplan.trace.conversation import Conversation, conversations_to_requests
from kvplan.trace.detect import first_record
from kvplan.trace.inputs import check_file, json_records
from kvplan.trace.mooncake import stage_mooncake
from kvplan.trace.options import ReadOptions
from kvplan.trace.table import Columns, StagedWorkload, stage
from kvplan.trace.tokens import TextTokenizer
from kvplan.workload import Workload, WorkloadMeta


def read_agent(path: Path, opts: ReadOptions | None = None) -> Workload:
    """Read an agent trace (any of the three shapes) into the canonical table."""
    return stage_agent(path, opts).workload()


def stage_agent(path: Path, opts: ReadOptions | None = None) -> StagedWorkload:
    """:func:`read_agent`, with the block hashes not yet laid out."""
    opts = opts or ReadOptions()
    path = check_file(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(1 << 16).lstrip("\ufeff \t\r\n")
    first = first_record(path, head) if head.startswith(("{", "[")) else None
    if isinstance(first, dict) and "hash_ids" in first:
        w = stage_mooncake(path, block_size=opts.block_size)
        return replace(w, meta=replace(w.meta, source_format="agent",
                                       notes=w.meta.notes + "; Dynamo agentic_mooncake rows"))
    extra: dict[str, str] = {}
    if isinstance(first, dict) and ("history" in first or "trajectory" in first):
        convs: Iterator[Conversation] | list[Conversation] = [_swe_agent(path, first, extra)]
    else:
        convs = _chat_logs(path)
    tokenizer = TextTokenizer(opts.tokenizer)
    req = conversations_to_requests(convs, tokenizer, opts.text_block_size)
    if len(req.input_tokens) == 0:
        raise InputError(path, "no assistant (LLM call) messages found")
    arrival, tool_wait = synthesize(opts.arrivals, req.conversation, req.output_tokens,
                                    req.after_tool)
    if "tokens_sent_recorded" in extra:
        extra["tokens_sent_estimated"] = str(int(req.input_tokens.sum()))
    meta = WorkloadMeta(source_format="agent", source_file=path.name,
                        block_size=opts.text_block_size, tokenizer=tokenizer.name,
                        arrival_process=opts.arrivals.describe(), extra=extra)
    return stage(Columns(req.conversation, arrival, req.input_tokens, req.output_tokens,
                         req.hashes, req.hash_offsets, tool_wait), meta)


def _swe_agent(path: Path, doc: dict, extra: dict[str, str]) -> Conversation:
    history = doc.get("history")
    if not isinstance(history, list):
        raise InputError(path, "expected a 'history' list of messages (SWE-agent .traj)",
                         field="history")
    msgs = [dict(m, role="tool") if isinstance(m, dict) and m.get("message_type") ==
            "observation" else m for m in history]
    stats = (doc.get("info") or {}).get("model_stats") or {}
    if stats.get("tokens_sent"):
        extra["tokens_sent_recorded"] = str(int(stats["tokens_sent"]))
        extra["api_calls_recorded"] = str(int(stats.get("api_calls", 0)))
    return messages_to_conversation(msgs, path, "history", None)


def _chat_logs(path: Path) -> Iterator[Conversation]:
    for place, line, rec in json_records(path):
        if "messages" not in rec:
            raise InputError(path, f"{place}: expected a 'messages' list (OpenAI chat log), got "
                             f"keys {json.dumps(sorted(rec))[:60]}", line=line)
        yield record_to_conversation(rec, path, place, line)
