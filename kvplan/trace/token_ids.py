"""JSONL requests with their prompt token ids: exact prefixes, hashed at any block size.

One JSON object per line, in the shapes other tools use (docs/workload.md names the sources):

    {"prompt_token_ids": [128000, 9906, ...], "expected_output_len": 128}         vLLM
    {"input_toks": 4, "output_toks": 70, "arrival_time_ns": 46926808,
     "input_tok_ids": [1, 2, 3, 4], "output_tok_ids": [...]}                      LLMServingSim

    field                 keys read (first present wins)
    prompt ids            prompt_token_ids, input_tok_ids, prompt.prompt_token_ids
    output length         expected_output_len, output_toks, output_len, output_length,
                          output_tokens; else len(output_tok_ids | output_token_ids)
    prompt length (check) prompt_len, input_toks, input_length: must equal len(ids)
    arrival (optional)    arrival_time_ns (ns), timestamp (ms), arrival_s (s); on every line
                          or none (then synthesized, as for ShareGPT)
    session (optional)    session_id

The ids of each prompt are chained from the same seed as text traces
(:func:`kvplan.trace.hashing.chain_units`), so equal leading ids give equal block hashes at
any ``--block-size`` (default 16). Example at block size 4: prompts [1 2 3 4 5 6 7 8 9] and
[1 2 3 4 5 6 7 0] share block 0 (ids 1-4), differ at block 1, and the first one's tail id 9
is not hashed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvplan.errors import InputError
from kvplan.trace.arrivals import synthesize
from kvplan.trace.hashing import block_positions, chain_units
from kvplan.trace.inputs import check_file, check_lengths, check_span, json_lines
from kvplan.trace.options import ReadOptions
from kvplan.trace.table import Columns, StagedWorkload, stage
from kvplan.workload import Workload, WorkloadMeta
from kvplan.workload.validate import MAX_TOKENS

IDS_KEYS = ("prompt_token_ids", "input_tok_ids")
OUTPUT_KEYS = ("expected_output_len", "output_toks", "output_len", "output_length",
               "output_tokens")
OUTPUT_ID_KEYS = ("output_tok_ids", "output_token_ids")
PROMPT_LEN_KEYS = ("prompt_len", "input_toks", "input_length")
ARRIVAL_KEYS = {"arrival_time_ns": 1e-9, "timestamp": 1e-3, "arrival_s": 1.0}
_MAX_COUNT = MAX_TOKENS  # the per-request limit (docs/workload.md, "Limits")


def is_token_ids_record(record: dict) -> bool:
    """True for a record this reader takes (used by format detection)."""
    prompt = record.get("prompt")
    return (any(k in record for k in IDS_KEYS)
            or (isinstance(prompt, dict) and "prompt_token_ids" in prompt))


def read_token_ids(path: Path, opts: ReadOptions | None = None) -> Workload:
    """Read a token-id JSONL file into the canonical table."""
    return stage_token_ids(path, opts).workload()


@dataclass(frozen=True)
class _Row:
    ids: np.ndarray
    output_tokens: int
    arrival_s: float | None
    session: str | None


def stage_token_ids(path: Path, opts: ReadOptions | None = None) -> StagedWorkload:
    """:func:`read_token_ids`, with the block hashes not yet laid out."""
    opts = opts or ReadOptions()
    path = check_file(path)
    rows, lines = [], []
    for lineno, obj in json_lines(path):
        rows.append(_row(path, lineno, obj))
        lines.append(lineno)
    if not rows:
        raise InputError(path, "no records, expected JSONL lines with prompt_token_ids")
    block_size = opts.text_block_size
    n_tokens = np.array([len(r.ids) for r in rows], dtype=np.int64)
    check_lengths(path, n_tokens, "prompt token ids", lambda i: (lines[i], ""))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(n_tokens, out=offsets[1:])
    chain = chain_units(np.concatenate([r.ids for r in rows]), offsets)
    n_blocks = n_tokens // block_size
    hash_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(n_blocks, out=hash_offsets[1:])
    output = np.array([r.output_tokens for r in rows], dtype=np.int64)
    session = _sessions(rows)
    arrival, tool_wait, process = _arrivals(path, rows, lines, session, output, opts)
    meta = WorkloadMeta(source_format="token-ids", source_file=path.name, block_size=block_size,
                        tokenizer="token ids", arrival_process=process,
                        notes="prompt token ids chained; partial-tail block not hashed")
    return stage(Columns(session, arrival, n_tokens, output,
                         chain[block_positions(offsets[:-1], n_blocks, block_size)],
                         hash_offsets, tool_wait), meta)


def _row(path: Path, line: int, obj: dict) -> _Row:
    key, raw = _prompt_ids(path, line, obj)
    ids = _id_array(path, line, key, raw)
    for k in PROMPT_LEN_KEYS:
        if k in obj:
            if _count(path, line, k, obj[k]) != len(ids):
                raise InputError(path, f"{k} is {obj[k]} but the prompt has {len(ids)} token "
                                 "ids", line=line, field=k)
            break
    return _Row(ids=ids, output_tokens=_output(path, line, obj),
                arrival_s=_arrival(path, line, obj), session=_session(path, line, obj))


def _prompt_ids(path: Path, line: int, obj: dict) -> tuple[str, object]:
    for k in IDS_KEYS:
        if k in obj:
            return k, obj[k]
    prompt = obj.get("prompt")
    if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
        return "prompt.prompt_token_ids", prompt["prompt_token_ids"]
    raise InputError(path, f"expected prompt token ids ({', '.join(IDS_KEYS)})", line=line)


def _id_array(path: Path, line: int, key: str, raw: object) -> np.ndarray:
    """The ids as uint64; every id an integer 0 <= id < 2**64 (JSON true/false among integers
    reads as 1/0, as numpy converts it)."""
    if not isinstance(raw, list):
        raise InputError(path, f"expected a list of token ids, got {type(raw).__name__}",
                         line=line, field=key)
    if not raw:
        return np.zeros(0, dtype=np.uint64)
    try:
        arr = np.asarray(raw)
    except (ValueError, OverflowError):  # ragged nesting
        arr = None
    if (arr is None or arr.ndim != 1 or arr.dtype.kind not in "iu"
            or (arr.dtype.kind == "i" and arr.min() < 0)):
        bad = next((x for x in raw if type(x) is not int or not 0 <= x < 2**64), raw[0])
        raise InputError(path, f"expected token ids, integers 0 <= id < 2**64, got "
                         f"{json.dumps(bad)[:40]}", line=line, field=key)
    return arr.astype(np.uint64)


def _count(path: Path, line: int, key: str, value: object) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_COUNT:
        raise InputError(path, f"expected a token count, an integer 0..{_MAX_COUNT:,}, got "
                         f"{json.dumps(value)[:40]}", line=line, field=key)
    return value


def _output(path: Path, line: int, obj: dict) -> int:
    for k in OUTPUT_KEYS:
        if k in obj:
            return _count(path, line, k, obj[k])
    for k in OUTPUT_ID_KEYS:
        if k in obj:
            if not isinstance(obj[k], list):
                raise InputError(path, f"expected a list of token ids, got "
                                 f"{type(obj[k]).__name__}", line=line, field=k)
            return len(obj[k])
    raise InputError(path, f"expected an output length ({', '.join(OUTPUT_KEYS)}) or output "
                     "token ids", line=line)


def _arrival(path: Path, line: int, obj: dict) -> float | None:
    for k, scale in ARRIVAL_KEYS.items():
        if k in obj:
            v = obj[k]
            if type(v) not in (int, float) or not math.isfinite(v) or abs(v) > 1e300:
                raise InputError(path, f"expected a finite number, got {json.dumps(v)[:40]}",
                                 line=line, field=k)
            return float(v) * scale
    return None


def _session(path: Path, line: int, obj: dict) -> str | None:
    if "session_id" not in obj:
        return None
    value = obj["session_id"]
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InputError(path, f"expected a string or an integer, got "
                         f"{json.dumps(value)[:40]}", line=line, field="session_id")
    return str(value)


def _sessions(rows: list[_Row]) -> np.ndarray | None:
    """Dense session keys in order of first appearance; None = one session per request."""
    if all(r.session is None for r in rows):
        return None
    keys: dict[str, int] = {}
    return np.array([keys.setdefault(r.session if r.session is not None else f"\0{i}",
                                     len(keys)) for i, r in enumerate(rows)], dtype=np.int64)


def _arrivals(path: Path, rows: list[_Row], lines: list[int], session: np.ndarray | None,
              output: np.ndarray, opts: ReadOptions
              ) -> tuple[np.ndarray, None, str | None]:
    """(arrival_s from the first, no tool waits, synthesis description or None)."""
    given = [r.arrival_s is not None for r in rows]
    if all(given):
        t = np.array([r.arrival_s for r in rows], dtype=np.float64)
        check_span(path, t, "arrival", lambda i: (lines[i], ""))
        return t - t.min(), None, None
    if any(given):
        raise InputError(path, f"no arrival time ({', '.join(ARRIVAL_KEYS)}) while other "
                         "lines have one", line=lines[given.index(False)])
    keys = np.arange(len(rows)) if session is None else session
    order = np.argsort(keys, kind="stable")  # sessions grouped, turns in file order
    arrival, _ = synthesize(opts.arrivals, keys[order], output[order],
                            np.zeros(len(rows), dtype=bool))
    in_file_order = np.empty_like(arrival)
    in_file_order[order] = arrival
    return in_file_order, None, opts.arrivals.describe()
