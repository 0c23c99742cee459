"""Recognise a trace's format from its content (never from its file name).

Looks at the first bytes: Parquet magic; a CSV header naming Azure or BurstGPT columns; the
first JSON record of a JSONL file or of a JSON array; or the keys of a single JSON document
(SWE-agent ``.traj``). The record's keys decide: prompt token ids (``prompt_token_ids``,
``input_tok_ids``) -> token-ids; ``hash_ids`` -> mooncake (agent with
Dynamo's ``tool_wait_ms``/``wait_for``); ``conversations``
or ``question_id``/``turns`` -> sharegpt; ``messages`` -> agent when a message has
``tool_calls`` or ``role: tool``, else sharegpt; ``history``/``trajectory`` -> agent.
"""

from __future__ import annotations

import json
from pathlib import Path

from kvplan.errors import InputError
from kvplan.trace.inputs import check_file
from kvplan.trace.token_ids import is_token_ids_record

FORMATS = ("parquet", "sharegpt", "agent", "mooncake", "azure", "burstgpt", "token-ids")
_PREFIX_BYTES = 1 << 16
_MAX_PROBE_BYTES = 1 << 26


def detect_format(path: Path) -> str:
    """Name of the reader for ``path``: one of :data:`FORMATS`; an InputError if none fits."""
    path = check_file(path)
    with open(path, "rb") as f:
        head = f.read(_PREFIX_BYTES)
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    first_line = text.split("\n", 1)[0]
    csv_format = _csv_format(first_line)
    if csv_format:
        return csv_format
    if text.startswith(("[", "{")):
        record = first_record(path, text)
        fmt = _json_format(record) if isinstance(record, dict) else None
        if fmt:
            return fmt
    raise InputError(path, "unknown trace format: expected Parquet, ShareGPT/MT-Bench JSON(L), "
                     "agent JSON(L) or .traj, Mooncake JSONL, token-id JSONL, Azure CSV or BurstGPT CSV")


def _csv_format(header: str) -> str | None:
    cols = {c.strip().strip('"') for c in header.split(",")}
    if {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} <= cols:
        return "azure"
    if {"Timestamp", "Request tokens", "Response tokens"} <= cols:
        return "burstgpt"
    return None


def first_record(path: Path, text: str) -> object:
    """The first JSONL line, the first element of a JSON array, or the whole JSON document."""
    decoder = json.JSONDecoder()
    if text.startswith("{"):
        try:
            return json.loads(text.split("\n", 1)[0])
        except json.JSONDecodeError:
            pass
    with open(path, "rb") as f:
        text = f.read(_MAX_PROBE_BYTES).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("["):
        text = text[1:].lstrip()
    try:
        return decoder.raw_decode(text)[0]
    except json.JSONDecodeError as exc:
        last_line = max(1, text.rstrip().count("\n") + 1)  # an error at EOF is on the last line
        raise InputError(path, f"malformed JSON ({exc.msg})",
                         line=min(exc.lineno, last_line)) from None


def _json_format(record: dict) -> str | None:
    if is_token_ids_record(record):
        return "token-ids"
    if "hash_ids" in record:
        return "agent" if "tool_wait_ms" in record or "wait_for" in record else "mooncake"
    if "conversations" in record or ("turns" in record and "question_id" in record):
        return "sharegpt"
    if "history" in record or "trajectory" in record:
        return "agent"
    messages = record.get("messages")
    if isinstance(messages, list):
        agentic = any(isinstance(m, dict) and (m.get("tool_calls") or m.get("role") == "tool")
                      for m in messages)
        return "agent" if agentic or "tools" in record else "sharegpt"
    return None
