"""The canonical workload: one row per request, as an Arrow table with provenance metadata."""

from kvplan.workload.schema import (
    SCHEMA_VERSION,
    WORKLOAD_SCHEMA,
    Workload,
    WorkloadMeta,
    read_workload,
    write_workload,
)

__all__ = [
    "SCHEMA_VERSION",
    "WORKLOAD_SCHEMA",
    "Workload",
    "WorkloadMeta",
    "read_workload",
    "write_workload",
]
