"""Shared parsing of benchmark-client result files (vLLM ``bench serve``, SGLang ``bench_serving``).

Both write one JSON object per benchmark run; appending runs to one file gives one object per
line (vLLM ``--append-result``, SGLang always appends). Both keep per-request lists under the
same names: ``input_lens``, ``output_lens``, ``ttfts`` (s), ``itls`` (s, one list per request)
and ``errors`` ("" = success). This module picks the run to replay and checks those lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kvplan.errors import InputError
from kvplan.trace.inputs import check_file, json_lines
from kvplan.validate.fields import TOKENS_MAX, as_float, as_int, as_list, as_str, required


def last_document(path: Path, key: str, hint: str) -> tuple[dict, str | None]:
    """The last JSON object of ``path`` that has ``key``, and a note when the file holds more
    than one run. ``hint`` says how to get per-request fields (the client's flag)."""
    path = check_file(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            whole = json.load(f)
        docs: list[tuple[int, Any]] = [(1, whole)]
    except json.JSONDecodeError:
        docs = list(json_lines(path))
    for lineno, doc in docs:
        if not isinstance(doc, dict):
            raise InputError(path, f"expected a JSON object, got {type(doc).__name__}",
                             line=lineno)
    with_key = [(lineno, doc) for lineno, doc in docs if key in doc]
    if not with_key:
        raise InputError(path, f"missing: no per-request results ({hint})", field=key)
    lineno, doc = with_key[-1]
    note = (f"{path.name} holds {len(docs)} runs; replaying the last one with per-request "
            f"results (line {lineno})") if len(docs) > 1 else None
    return doc, note


@dataclass(frozen=True)
class ClientResults:
    """Per-request lists of a benchmark client, checked; ``ok`` marks successful requests."""

    input_lens: np.ndarray
    output_lens: np.ndarray
    ttfts: np.ndarray
    e2e: np.ndarray
    ok: np.ndarray

    @property
    def failed(self) -> int:
        return int(np.count_nonzero(~self.ok))


def client_results(path: Path, doc: dict, latencies_key: str | None = None) -> ClientResults:
    """Check the per-request lists and derive each request's end-to-end latency.

    A request failed when its ``errors`` entry is non-empty or its ``output_lens`` is 0 (both
    clients write 0 for a failure, and a client error may carry an empty reason). End to end:
    ``doc[latencies_key]`` when the file has it, else TTFT + the sum of its ITLs, which is the
    time of its last streamed chunk (the clients' ``latency`` for a streamed response).
    """
    n = len(as_list(path, required(doc, "ttfts", path), "ttfts"))
    lists = {k: as_list(path, required(doc, k, path), k, length=n)
             for k in ("input_lens", "output_lens", "itls", "errors")}
    errors = [as_str(path, e if e is not None else "", f"errors[{i}]")
              for i, e in enumerate(lists["errors"])]
    out = np.array([as_int(path, v, f"output_lens[{i}]", maximum=TOKENS_MAX)
                    for i, v in enumerate(lists["output_lens"])], dtype=np.int64)
    ok = np.array([not e for e in errors], dtype=bool) & (out > 0)
    inp = np.array([as_int(path, v, f"input_lens[{i}]", maximum=TOKENS_MAX)
                    for i, v in enumerate(lists["input_lens"])], dtype=np.int64)
    ttft = np.zeros(n)
    e2e = np.zeros(n)
    lat = (as_list(path, doc[latencies_key], latencies_key, length=n)
           if latencies_key and latencies_key in doc else None)
    for i in np.flatnonzero(ok):
        ttft[i] = as_float(path, doc["ttfts"][i], f"ttfts[{i}]", minimum=0.0)
        if lat is not None:
            e2e[i] = as_float(path, lat[i], f"{latencies_key}[{i}]", minimum=ttft[i])
        else:
            itl = as_list(path, lists["itls"][i], f"itls[{i}]")
            e2e[i] = ttft[i] + sum(as_float(path, v, f"itls[{i}]", minimum=0.0) for v in itl)
    return ClientResults(inp, out, ttft, e2e, ok)
