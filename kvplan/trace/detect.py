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
from kvplan.trace.inputs import BOM, check_file, echo, json_error, parse_json
from kvplan.trace.token_ids import is_token_ids_record

FORMATS = ("parquet", "sharegpt", "agent", "mooncake", "azure", "burstgpt", "token-ids")
_PREFIX_BYTES = 1 << 16
_CSV_HEADERS = {"azure": "TIMESTAMP,ContextTokens,GeneratedTokens",
                "burstgpt": "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"}


def detect_format(path: Path) -> str:
    """Name of the reader for ``path``: one of :data:`FORMATS`; an InputError if none fits."""
    path = check_file(path)
    with open(path, "rb") as f:
        head = f.read(_PREFIX_BYTES)
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    csv_format = _csv_format(first_line)
    if csv_format:
        return csv_format
    if text.startswith(("[", "{")):
        record = first_record(path)
        fmt = _json_format(record) if isinstance(record, dict) else None
        if fmt:
            return fmt
    elif "," in first_line:
        raise InputError(path, f"unknown CSV header {echo(first_line)}, expected Azure's "
                         f"{_CSV_HEADERS['azure']!r} or BurstGPT's {_CSV_HEADERS['burstgpt']!r}",
                         line=1)
    raise InputError(path, "unknown trace format: expected Parquet, ShareGPT/MT-Bench JSON(L), "
                     "agent JSON(L) or .traj, Mooncake JSONL, token-id JSONL, Azure CSV or BurstGPT CSV")


def _csv_format(header: str) -> str | None:
    cols = {c.strip().strip('"') for c in header.split(",")}
    if {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} <= cols:
        return "azure"
    if {"Timestamp", "Request tokens", "Response tokens"} <= cols:
        return "burstgpt"
    return None


def first_record(path: Path) -> object:
    """The first JSONL line, the first element of a JSON array, or the whole JSON document.

    Reads only as far as that record ends, however long it is: a JSONL file's first line,
    else a prefix grown 4x at a time while the decoder stops at the end of what was read.
    """
    with open(path, "rb") as f:
        head = f.read(_PREFIX_BYTES).removeprefix(BOM).lstrip()
        if head.startswith(b"{"):
            f.seek(0)
            line = f.readline().decode("utf-8", errors="replace").removeprefix("\ufeff")
            try:
                return json.loads(line)
            except json.JSONDecodeError as exc:
                if exc.pos < len(line.rstrip()):  # not merely cut short: a multi-line document
                    raise json_error(path, exc) from None
            except (ValueError, RecursionError):
                return parse_json(line, path, 1)  # raises the one-line error
    size = _PREFIX_BYTES
    while True:
        with open(path, "rb") as f:
            data = f.read(size)
        text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
        start = len(text) - len(text.lstrip())
        if text[start:start + 1] == "[":
            start = len(text) - len(text[start + 1:].lstrip())
        try:
            return json.JSONDecoder().raw_decode(text, start)[0]
        except json.JSONDecodeError as exc:
            cut_short = exc.pos >= len(text) - 64 or exc.msg.startswith("Unterminated string")
            if len(data) == size and cut_short:
                size *= 4
                continue
            last_line = text.rstrip().count("\n") + 1  # an error at EOF is on the last line
            raise json_error(path, exc, min(exc.lineno, last_line)) from None
        except (ValueError, RecursionError):
            return parse_json(text, path)  # raises the one-line error


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
