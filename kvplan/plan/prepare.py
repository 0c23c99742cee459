"""From a workload to what the screen needs: the access stream, stack distances and curves."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pyarrow.compute as pc

from kvplan.errors import KvplanError
from kvplan.plan.curves import curve_from_distances, prefix_distances, warm_prefix_blocks
from kvplan.plan.screen import ScreenInput
from kvplan.plan.shards import shards_curve
from kvplan.plan.stackdist import stack_distances
from kvplan.plan.stream import AccessStream, access_stream, select_requests
from kvplan.workload import Workload


def scale_load(workload: Workload, load_scale: float) -> Workload:
    """The same requests arriving ``load_scale`` times as fast (arrival_s / load_scale).

    Example: arrivals [0, 10, 20] s at load_scale 2 -> [0, 5, 10] s.
    """
    if load_scale <= 0:
        raise KvplanError(f"load_scale must be > 0, got {load_scale}")
    if load_scale == 1.0:
        return workload
    t = workload.table
    i = t.schema.get_field_index("arrival_s")
    arrivals = pc.divide(t.column(i), float(load_scale))
    notes = (workload.meta.notes + f" arrivals scaled x{load_scale:g} by kvplan plan").strip()
    return Workload(table=t.set_column(i, "arrival_s", arrivals),
                    meta=replace(workload.meta, notes=notes))


def prepare(workload: Workload, duration_s: float | None = None,
            sample_rate: float | None = None, seed: int = 0) -> ScreenInput:
    """Stack distances and the LRU curve of a workload, plus its per-request columns.

    ``duration_s`` sets the span the arrival rate is taken over (a replica's share of a trace
    keeps the whole trace's span); None = the workload's own arrival span. ``sample_rate``:
    None = exact stack distances; else a SHARDS curve at that rate (seeded by ``seed``) and
    per-request warm prefixes instead of prefix distances (kvplan.plan.sampling).
    """
    if workload.num_requests == 0:
        raise KvplanError(f"{workload.meta.source_file}: the workload has no requests")
    t = workload.table
    arrivals = t.column("arrival_s").to_numpy().astype(np.float64)
    span = float(arrivals[-1] - arrivals[0]) if arrivals.size > 1 else 0.0
    span = span if duration_s is None else duration_s
    if span <= 0:
        raise KvplanError(f"{workload.meta.source_file}: all requests arrive at the same time; "
                          "a plan needs an arrival rate")
    columns = RequestColumns(
        input_tokens=t.column("input_tokens").to_numpy().astype(np.float64),
        output_tokens=t.column("output_tokens").to_numpy().astype(np.float64),
        arrival_s=arrivals)
    return trace_of(access_stream(workload), columns, span, sample_rate, seed)


@dataclass(frozen=True)
class RequestColumns:
    """The per-request columns the screen reads (float64, arrival order)."""

    input_tokens: np.ndarray
    output_tokens: np.ndarray
    arrival_s: np.ndarray

    def take(self, rows: np.ndarray) -> RequestColumns:
        return RequestColumns(*(getattr(self, f.name)[rows] for f in fields(self)))


def trace_of(stream: AccessStream, columns: RequestColumns, duration_s: float,
             sample_rate: float | None, seed: int) -> ScreenInput:
    """The screen's view of one access stream (see :func:`prepare`)."""
    kw = {f.name: getattr(columns, f.name) for f in fields(columns)} | {"duration_s": duration_s}
    if sample_rate is not None:
        sc = shards_curve(stream.ids, sample_rate, seed, stream.offsets)
        return ScreenInput(stream=stream, pd=None, curve=sc.curve, warm_blocks=warm_prefix_blocks(
            stream.ids, stream.offsets, stream.num_blocks), sample_rate=sc.sample_rate,
            sampled_accesses=sc.sampled_accesses, **kw)
    sd = stack_distances(stream.ids, stream.num_blocks, stream.offsets)
    return ScreenInput(stream=stream, pd=prefix_distances(sd, stream.offsets),
                 curve=curve_from_distances(sd), **kw)


def replica_trace(whole: ScreenInput, rows: np.ndarray, seed: int = 0) -> ScreenInput:
    """The trace of the requests ``rows`` of ``whole`` (one replica's share, kvplan.plan
    .routing), at the whole trace's arrival span and sample rate.

    Built from the whole trace's dense ids (kvplan.plan.stream.select_requests): the same
    result as :func:`prepare` of the routed sub-workload, without re-hashing its blocks.
    """
    columns = RequestColumns(whole.input_tokens, whole.output_tokens, whole.arrival_s)
    return trace_of(select_requests(whole.stream, rows), columns.take(rows), whole.duration_s,
                    whole.sample_rate, seed)
