"""From a workload to what the screen needs: the access stream, stack distances and curves."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow.compute as pc

from kvplan.errors import KvplanError
from kvplan.plan.curves import curve_from_distances, prefix_distances, warm_prefix_blocks
from kvplan.plan.screen import ScreenInput
from kvplan.plan.shards import shards_curve
from kvplan.plan.stackdist import stack_distances
from kvplan.plan.stream import access_stream
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
    stream = access_stream(workload)
    arrivals = workload.table.column("arrival_s").to_numpy()
    span = float(arrivals[-1] - arrivals[0]) if arrivals.size > 1 else 0.0
    span = span if duration_s is None else duration_s
    if span <= 0:
        raise KvplanError(f"{workload.meta.source_file}: all requests arrive at the same time; "
                          "a plan needs an arrival rate")
    columns = {"input_tokens": workload.table.column("input_tokens").to_numpy().astype(
        np.float64), "output_tokens": workload.table.column("output_tokens").to_numpy().astype(
        np.float64), "arrival_s": arrivals.astype(np.float64), "duration_s": span}
    if sample_rate is not None:
        sc = shards_curve(stream.ids.astype(np.uint64), sample_rate, seed, stream.offsets)
        return ScreenInput(stream=stream, pd=None, curve=sc.curve, warm_blocks=warm_prefix_blocks(
            stream.ids, stream.offsets, stream.num_blocks), sample_rate=sc.sample_rate,
            sampled_accesses=sc.sampled_accesses, **columns)
    sd = stack_distances(stream.ids, stream.num_blocks, stream.offsets)
    return ScreenInput(stream=stream, pd=prefix_distances(sd, stream.offsets),
                 curve=curve_from_distances(sd), **columns)
