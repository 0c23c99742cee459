"""Tiny hand-built workloads for the event-simulator tests."""

from __future__ import annotations

import pyarrow as pa

from kvplan.workload import WORKLOAD_SCHEMA, Workload, WorkloadMeta


def make_workload(rows: list[tuple[float, int, int, list[int]]], block_size: int = 512,
                  sessions: list[int] | None = None) -> Workload:
    """Rows of (arrival_s, input_tokens, output_tokens, block hashes)."""
    n = len(rows)
    table = pa.table({
        "request_id": list(range(n)),
        "session_id": sessions or list(range(n)),
        "turn": [0] * n,
        "arrival_s": [r[0] for r in rows],
        "input_tokens": [r[1] for r in rows],
        "output_tokens": [r[2] for r in rows],
        "block_hashes": [r[3] for r in rows],
        "tool_wait_s": [None] * n,
    }, schema=WORKLOAD_SCHEMA)
    meta = WorkloadMeta(source_format="synth", source_file="test", block_size=block_size,
                        tokenizer="none")
    return Workload(table=table, meta=meta)


def head(workload: Workload, n: int) -> Workload:
    """The first ``n`` requests of a workload."""
    return Workload(table=workload.table.slice(0, n), meta=workload.meta)
