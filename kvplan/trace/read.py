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
from kvplan.trace.table import Columns, StagedWorkload, dependencies_of, stage
from kvplan.workload import Workload, read_workload
from kvplan.workload.validate import block_hash_lists, validate_workload

DEFAULT_TRACE = "mooncake_fast25_synthetic_trace.jsonl"


def default_trace_path() -> Path:
    """The bundled default workload: Mooncake's FAST'25 synthetic trace (3,993 requests)."""
    return bundled_file("traces", DEFAULT_TRACE)


def read_trace(path: Path | None = None, fmt: str = "auto",
               opts: ReadOptions | None = None) -> Workload:
    """Read any supported trace (or canonical Parquet) into a :class:`Workload`."""
    opts = opts or ReadOptions()
    path, fmt = _resolve(path, fmt)
    if fmt == "parquet":
        return reblock(read_workload(path), opts.block_size)
    return stage_trace(path, fmt, opts).workload()


def stage_trace(path: Path | None = None, fmt: str = "auto",
                opts: ReadOptions | None = None) -> StagedWorkload:
    """:func:`read_trace` with the block hashes not yet laid out (for streaming output)."""
    opts = opts or ReadOptions()
    path, fmt = _resolve(path, fmt)
    if fmt == "parquet":
        return stage_workload(reblock(read_workload(path), opts.block_size))
    staged = _stage_with_reader(path, fmt, opts)
    validate_workload(staged.table, staged.meta, path)
    return staged


def _stage_with_reader(path: Path, fmt: str, opts: ReadOptions) -> StagedWorkload:
    if fmt == "mooncake":
        from kvplan.trace.mooncake import stage_mooncake
        return stage_mooncake(path, block_size=opts.block_size)
    if fmt == "sharegpt":
        from kvplan.trace.sharegpt import stage_sharegpt
        return stage_sharegpt(path, opts)
    if fmt == "agent":
        from kvplan.trace.agent import stage_agent
        return stage_agent(path, opts)
    if fmt == "token-ids":
        from kvplan.trace.token_ids import stage_token_ids
        return stage_token_ids(path, opts)
    if fmt == "azure":
        from kvplan.trace.azure import stage_azure
        return stage_azure(path, opts)
    from kvplan.trace.burstgpt import stage_burstgpt
    return stage_burstgpt(path, opts)


def _resolve(path: Path | None, fmt: str) -> tuple[Path, str]:
    path = check_file(Path(path) if path is not None else default_trace_path())
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise KvplanError(f"unknown format '{fmt}', expected auto or one of {', '.join(FORMATS)}")
    return path, fmt


def stage_workload(workload: Workload) -> StagedWorkload:
    """A canonical workload back in staged form (its rows are already sorted and numbered)."""
    t = workload.table
    col = block_hash_lists(t)
    offsets = np.asarray(col.offsets, dtype=np.int64)
    cols = Columns(t.column("session_id").to_numpy(), t.column("arrival_s").to_numpy(),
                   t.column("input_tokens").to_numpy(), t.column("output_tokens").to_numpy(),
                   col.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]],
                   offsets - offsets[0],
                   t.column("tool_wait_s").to_numpy(zero_copy_only=False),
                   wait_for=dependencies_of(t),
                   delay_s=(t.column("delay_s").to_numpy(zero_copy_only=False)
                            if "delay_s" in t.column_names else None))
    return stage(cols, workload.meta)


def load_workload(path: Path | None = None, *, block_size: int | None = None) -> Workload:
    """Any supported trace file or canonical Parquet (None = the bundled default trace)."""
    return read_trace(path, "auto", ReadOptions(block_size=block_size))


def reblock(workload: Workload, block_size: int | None) -> Workload:
    """The same workload with blocks merged to a coarser ``block_size`` (a multiple)."""
    if block_size is None or block_size == workload.block_size:
        return workload
    col = block_hash_lists(workload.table)
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
