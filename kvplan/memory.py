"""Give memory that was freed back to the operating system.

Freed memory does not leave the process by itself: Arrow's allocator keeps freed pages for
reuse, and glibc's malloc keeps freed heap chunks (numpy's and numba's arrays below its mmap
threshold, which grows to 32 MB). After a stage that built and dropped big tables (a plan
that split and wrote its sub-workloads: 0.5 GB on the 74,737-request agent trace) the
process stays that much larger for the rest of its life. :func:`return_freed` hands it
back, in milliseconds; it frees nothing still in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

import pyarrow as pa


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def return_freed() -> None:
    """Release what Arrow's pool and the C heap hold of freed memory."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
