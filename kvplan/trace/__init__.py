"""Trace ingestion: any supported trace format -> the canonical workload table.

``load_workload(path)`` detects the format by content; ``read_trace`` takes explicit options
(format, block size, tokenizer, arrival synthesis); ``stage_trace`` stops before laying out
the block hashes, which :mod:`kvplan.trace.convert` streams to Parquet;
:mod:`kvplan.trace.synth` generates synthetic workloads; :func:`trace_info` summarises one.
"""

from kvplan.trace.arrivals import ArrivalSpec, Dist
from kvplan.trace.detect import FORMATS, detect_format
from kvplan.trace.info import TraceInfo, trace_info
from kvplan.trace.options import ReadOptions
from kvplan.trace.read import default_trace_path, load_workload, read_trace, reblock, stage_trace
from kvplan.trace.table import StagedWorkload

__all__ = [
    "FORMATS",
    "ArrivalSpec",
    "Dist",
    "ReadOptions",
    "StagedWorkload",
    "TraceInfo",
    "default_trace_path",
    "detect_format",
    "load_workload",
    "read_trace",
    "reblock",
    "stage_trace",
    "trace_info",
]
