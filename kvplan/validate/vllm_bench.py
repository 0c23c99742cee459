"""vLLM ``vllm bench serve --save-result --save-detailed`` JSON (docs/validate.md).

Field names and units from vLLM 0.19.0 ``vllm/benchmarks/serve.py:984-1000`` (the result dict)
and ``vllm/benchmarks/lib/endpoint_request_func.py:83-96, 187-249`` (how each value is taken):

- ``start_times``: ``time.perf_counter()`` when the client sent the request (seconds, the
  client process's monotonic clock); arrival = start time - the first start time;
- ``ttfts``: first streamed chunk - start (s); ``itls``: gaps between later chunks (s);
- ``latencies``: last chunk - start (s); vLLM 0.34.0 writes it (``serve.py:1333``), 0.19.0
  does not, and then e2e = TTFT + sum(ITLs), the same instant;
- ``input_lens`` / ``output_lens``: prompt and output tokens (``output_lens`` is 0 for a
  failed request, ``serve.py:424-456``); ``errors``: "" for a success.

The file names no engine settings but ``model_id``; the replay fills them from flags or vLLM's
defaults (docs/validate.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kvplan.errors import InputError
from kvplan.validate.bench_json import client_results, last_document
from kvplan.validate.fields import as_float, as_list, optional
from kvplan.validate.run import EngineRun, RunSettings, measured_frame


def read_vllm_bench(path: Path) -> EngineRun:
    """Read a detailed ``vllm bench serve`` result file (the last run of an appended file)."""
    doc, note = last_document(path, "ttfts", "save it with --save-result --save-detailed")
    res = client_results(path, doc, latencies_key="latencies")
    starts = as_list(path, doc.get("start_times"), "start_times", length=len(res.ok))
    idx = np.flatnonzero(res.ok)
    arrival = np.array([as_float(path, starts[i], f"start_times[{i}]") for i in idx])
    frame, _ = measured_frame(path, [str(i) for i in idx], arrival, res.input_lens[idx],
                              res.output_lens[idx], res.ttfts[idx], res.e2e[idx])
    model = optional(path, doc, "model_id", "str")
    notes = [n for n in (note, _concurrency_note(path, doc)) if n]
    return EngineRun(
        path=path, source_format="vllm-bench", engine="vLLM (bench serve client)",
        requests=frame, failed=res.failed,
        settings=RunSettings(model=model, sources={"model": "model_id"} if model else {}),
        clocks="all times from the benchmark client (time.perf_counter): arrival = request "
               "sent, TTFT and e2e include HTTP, tokenization and detokenization",
        notes=tuple(notes))


def _concurrency_note(path: Path, doc: dict) -> str | None:
    cap = doc.get("max_concurrency")
    if cap is None:
        return None
    if not isinstance(cap, int) or isinstance(cap, bool):
        raise InputError(path, f"expected an integer or null, got {cap!r}",
                         field="max_concurrency")
    return (f"the client capped concurrency at {cap}: replayed open loop at the recorded "
            "start times")
