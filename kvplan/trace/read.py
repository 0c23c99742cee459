"""One entry point for every trace format: detect (or take) the format, call its reader."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from kvplan.bundled import bundled_file
from kvplan.errors import KvplanError
from kvplan.trace.detect import FORMATS, detect_format
from kvplan.trace.hashing import coarsen
from kvplan.trace.inputs import check_file
from kvplan.trace.options import ReadOptions
from kvplan.workload import Workload, read_workload

DEFAULT_TRACE = "mooncake_fast25_synthetic_trace.jsonl"


def default_trace_path() -> Path:
    """The bundled default workload: Mooncake's FAST'25 synthetic trace (3,993 requests)."""
    return bundled_file("traces", DEFAULT_TRACE)


def read_trace(path: Path | None = None, fmt: str = "auto",
               opts: ReadOptions | None = None) -> Workload:
    """Read any supported trace (or canonical Parquet) into a :class:`Workload`."""
    opts = opts or ReadOptions()
    path = check_file(Path(path) if path is not None else default_trace_path())
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise KvplanError(f"unknown format '{fmt}', expected auto or one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        return reblock(read_workload(path), opts.block_size)
    if fmt == "mooncake":
        from kvplan.trace.mooncake import read_mooncake
        return read_mooncake(path, block_size=opts.block_size)
    if fmt == "sharegpt":
        from kvplan.trace.sharegpt import read_sharegpt
        return read_sharegpt(path, opts)
    if fmt == "agent":
        from kvplan.trace.agent import read_agent
        return read_agent(path, opts)
    if fmt == "azure":
        from kvplan.trace.azure import read_azure
        return read_azure(path, opts)
    from kvplan.trace.burstgpt import read_burstgpt
    return read_burstgpt(path, opts)


def load_workload(path: Path | None = None, *, block_size: int | None = None) -> Workload:
    """Any supported trace file or canonical Parquet (None = the bundled default trace)."""
    return read_trace(path, "auto", ReadOptions(block_size=block_size))


def reblock(workload: Workload, block_size: int | None) -> Workload:
    """The same workload with blocks merged to a coarser ``block_size`` (a multiple)."""
    if block_size is None or block_size == workload.block_size:
        return workload
    col = workload.table.column("block_hashes").combine_chunks()
    hashes, offsets = coarsen(col.values.to_numpy(zero_copy_only=False),
                              np.asarray(col.offsets), workload.table.column("input_tokens")
                              .to_numpy(), workload.block_size, block_size)
    merged = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                      pa.array(hashes, type=pa.uint64()))
    table = workload.table.set_column(workload.table.schema.get_field_index("block_hashes"),
                                      "block_hashes", merged)
    note = f"merged {block_size // workload.block_size} blocks of {workload.block_size} per block"
    meta = replace(workload.meta, block_size=block_size,
                   notes="; ".join(x for x in (workload.meta.notes, note) if x))
    return Workload(table=table.cast(workload.table.schema), meta=meta)
