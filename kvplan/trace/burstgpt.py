"""BurstGPT traces: ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``.

``Timestamp`` is seconds from the trace start. Lengths only, no content: one session per
request and no shared blocks (stated in the metadata and ``trace info``). Rows with 0
response tokens are failed requests in BurstGPT; they are dropped and counted in the notes.
Read column-wise with polars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kvplan.errors import InputError
from kvplan.trace.inputs import check_file, check_span, csv_place, read_csv_columns
from kvplan.trace.options import ReadOptions
from kvplan.trace.table import StagedWorkload, content_free_columns, stage
from kvplan.workload import Workload, WorkloadMeta

COLUMNS = {"Timestamp": "float", "Request tokens": "int", "Response tokens": "int"}


def read_burstgpt(path: Path, opts: ReadOptions | None = None) -> Workload:
    """Read a BurstGPT CSV; failed requests (0 response tokens) are dropped."""
    return stage_burstgpt(path, opts).workload()


def stage_burstgpt(path: Path, opts: ReadOptions | None = None) -> StagedWorkload:
    """:func:`read_burstgpt`, with the block hashes not yet laid out."""
    opts = opts or ReadOptions()
    path = check_file(path)
    df = read_csv_columns(path, COLUMNS)
    ok = df.filter(df["Response tokens"] > 0)
    if ok.height == 0:
        raise InputError(path, "every row has 0 response tokens (failed requests)",
                         field="Response tokens")
    ts = ok["Timestamp"].to_numpy()
    rows = np.flatnonzero(df["Response tokens"].to_numpy() > 0)
    check_span(path, ts, "Timestamp", lambda i: csv_place(int(rows[i])))
    bs = opts.text_block_size
    cols = content_free_columns(ts - ts.min(), ok["Request tokens"].to_numpy(),
                                ok["Response tokens"].to_numpy(), bs)
    dropped = df.height - ok.height
    notes = "lengths only: no prefix sharing (unique block hashes)"
    if dropped:
        notes += f"; {dropped} failed request(s) with 0 response tokens dropped"
    meta = WorkloadMeta(source_format="burstgpt", source_file=path.name, block_size=bs,
                        tokenizer="none", has_content=False, notes=notes)
    return stage(cols, meta)
