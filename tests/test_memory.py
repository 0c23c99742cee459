"""Freed memory goes back to the operating system (kvplan.memory)."""

from __future__ import annotations

import numpy as np
import pytest

from kvplan import memory
from kvplan.plan.stages import rss_mib


@pytest.mark.skipif(memory._TRIM is None, reason="the C library has no malloc_trim")
def test_freed_heap_chunks_leave_the_process():
    """200 MB in 100 kB arrays (below malloc's mmap threshold once it has grown, so on the
    heap) freed: the heap keeps them until return_freed hands them back."""
    big = np.ones(64 << 20, np.uint8)  # raises glibc's dynamic mmap threshold past 100 kB
    del big
    chunks = [np.ones(100_000, np.uint8) for _ in range(2_000)]
    held = rss_mib()
    del chunks[:-1]  # the last one pins the heap's top, so free() alone cannot shrink it
    kept = rss_mib()
    memory.return_freed()
    assert kept - rss_mib() > 100
    assert held - kept < 50
