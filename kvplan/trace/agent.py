"""Agent traces: SWE-agent ``.traj``, OpenAI chat logs with tool calls, Dynamo agentic_mooncake.

Every LLM call of an agent run is a request whose prompt is the run's history so far:

- SWE-agent ``.traj`` (one JSON document): ``history`` of role/content messages; entries with
  ``message_type: observation`` are tool output. ``info.model_stats.tokens_sent`` (when not
  zeroed) is kept in the metadata next to the estimate, as ground truth for the estimator.
- OpenAI chat logs (JSON array or JSONL, one agent run per record): ``messages`` with
  ``tool_calls`` and ``role: tool``, optional ``tools`` schema (rendered into the system prompt).
- Dynamo agentic_mooncake JSONL (``hash_ids`` plus ``session_id``/``tool_wait_ms``): read by
  :mod:`kvplan.trace.mooncake`, which keeps its timestamps, tool waits and its request graph
  (``wait_for``, ``delay``: :mod:`kvplan.trace.dynamo`).

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
from kvplan.trace.conversation import (
    Conversation,
    check_request_lengths,
    conversations_to_requests,
)
from kvplan.trace.detect import first_record
from kvplan.trace.inputs import BOM, check_file, echo, json_records
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
    with open(path, "rb") as f:
        head = f.read(1 << 16).removeprefix(BOM).lstrip()
    first = first_record(path) if head.startswith((b"{", b"[")) else None
    if isinstance(first, dict) and "hash_ids" in first:
        w = stage_mooncake(path, block_size=opts.block_size)
        return replace(w, meta=replace(w.meta, source_format="agent",
                                       notes=w.meta.notes + "; Dynamo agentic_mooncake rows"))
    extra: dict[str, str] = {}
    swe_agent = isinstance(first, dict) and ("history" in first or "trajectory" in first)
    if swe_agent:
        convs: Iterator[Conversation] | list[Conversation] = [_swe_agent(path, first, extra)]
    else:
        convs = _chat_logs(path)
    tokenizer = TextTokenizer(opts.tokenizer)
    req = conversations_to_requests(convs, tokenizer, opts.text_block_size)
    if len(req.input_tokens) == 0:
        raise InputError(path, "no assistant (LLM call) messages found")
    check_request_lengths(req, path, lambda c: "history" if swe_agent else f"record {c}")
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
    stats = _table(path, _table(path, doc.get("info"), "info").get("model_stats"),
                   "info.model_stats")
    sent = _count(path, stats.get("tokens_sent"), "info.model_stats.tokens_sent")
    if sent:
        extra["tokens_sent_recorded"] = str(sent)
        extra["api_calls_recorded"] = str(_count(path, stats.get("api_calls"),
                                                 "info.model_stats.api_calls"))
    return messages_to_conversation(msgs, path, "history", None)


def _table(path: Path, value: object, name: str) -> dict:
    """An optional JSON object of a .traj (absent or null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(path, f"expected an object, got {echo(value)}", field=name)
    return value


def _count(path: Path, value: object, name: str) -> int:
    """An optional non-negative integer of a .traj (absent or null: 0)."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(path, f"expected an integer >= 0, got {echo(value)}", field=name)
    return value


def _chat_logs(path: Path) -> Iterator[Conversation]:
    for place, line, rec in json_records(path):
        if "messages" not in rec:
            raise InputError(path, f"{place}: expected a 'messages' list (OpenAI chat log), got "
                             f"keys {json.dumps(sorted(rec))[:60]}", line=line)
        yield record_to_conversation(rec, path, place, line)
