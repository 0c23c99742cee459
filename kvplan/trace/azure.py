"""Azure LLM inference traces (Splitwise, 2023/2024): ``TIMESTAMP,ContextTokens,GeneratedTokens``.

Lengths only, no content: every request is its own session and no block is shared (each
request gets unique block hashes), which the metadata and ``trace info`` state. Read
column-wise with polars.
"""

from __future__ import annotations

from pathlib import Path

from kvplan.trace.inputs import check_file, check_span, csv_place, read_csv_columns
from kvplan.trace.options import ReadOptions
from kvplan.trace.table import StagedWorkload, content_free_columns, stage
from kvplan.workload import Workload, WorkloadMeta

COLUMNS = {"TIMESTAMP": "datetime", "ContextTokens": "int", "GeneratedTokens": "int"}


def read_azure(path: Path, opts: ReadOptions | None = None) -> Workload:
    """Read an Azure LLM inference CSV; arrival_s = TIMESTAMP - first TIMESTAMP."""
    return stage_azure(path, opts).workload()


def stage_azure(path: Path, opts: ReadOptions | None = None) -> StagedWorkload:
    """:func:`read_azure`, with the block hashes not yet laid out."""
    opts = opts or ReadOptions()
    path = check_file(path)
    df = read_csv_columns(path, COLUMNS)
    ts = df["TIMESTAMP"]
    arrival = ((ts - ts.min()).dt.total_microseconds() / 1e6).to_numpy()
    check_span(path, arrival, "TIMESTAMP", csv_place)
    bs = opts.text_block_size
    cols = content_free_columns(arrival, df["ContextTokens"].to_numpy(),
                                df["GeneratedTokens"].to_numpy(), bs)
    meta = WorkloadMeta(source_format="azure", source_file=path.name, block_size=bs,
                        tokenizer="none", has_content=False,
                        notes="lengths only: no prefix sharing (unique block hashes)")
    return stage(cols, meta)


