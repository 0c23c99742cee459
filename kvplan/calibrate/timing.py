"""Timing one operation: warm-up, synchronise, repeat, keep every sample.

A *timer* is any callable that runs ``fn`` once and returns the seconds it took. Three kinds:

- :func:`wall_timer` — ``perf_counter`` around the call, after a ``sync`` before and after
  (host work, SSD I/O, CPU matmul; on CUDA with ``torch.cuda.synchronize`` as ``sync``);
- :func:`cuda_event_timer` — ``torch.cuda.Event`` pairs recorded on the current stream, so the
  figure is GPU time, free of Python launch jitter between the events;
- a fake in the tests (a list of durations), so the fitting math is checked without hardware.

Medians, not means: one page fault or one clock boost must not move a fitted bandwidth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Timer = Callable[[Callable[[], object]], float]


@dataclass(frozen=True)
class Repeats:
    """How often to run one measured point."""

    warmup: int = 2
    """Untimed calls first (allocator, cuBLAS heuristics, page faults, clocks)."""
    repeats: int = 5
    """Timed calls kept as raw samples."""


@dataclass(frozen=True)
class Spread:
    """Median and spread of one point's samples, in seconds."""

    median_s: float
    p10_s: float
    p90_s: float
    n: int


def spread(samples_s: np.ndarray) -> Spread:
    """Median, 10th and 90th percentile of samples.

    >>> spread(np.array([1.0, 2.0, 3.0, 4.0, 100.0])).median_s
    3.0
    """
    s = np.asarray(samples_s, dtype=np.float64)
    p10, med, p90 = np.percentile(s, [10, 50, 90])
    return Spread(float(med), float(p10), float(p90), int(s.size))


def time_repeats(fn: Callable[[], object], timer: Timer, rep: Repeats) -> np.ndarray:
    """Run ``fn`` ``rep.warmup`` times untimed, then ``rep.repeats`` timed; return seconds."""
    for _ in range(rep.warmup):
        timer(fn)
    return np.array([timer(fn) for _ in range(rep.repeats)], dtype=np.float64)


def _no_sync() -> None:
    return None


def wall_timer(sync: Callable[[], None] = _no_sync) -> Timer:
    """A timer measuring wall time, calling ``sync`` before starting and before stopping."""

    def timer(fn: Callable[[], object]) -> float:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    return timer


def cuda_event_timer() -> Timer:
    """A timer from CUDA events on the current stream (GPU time; host waits at the end)."""
    import torch

    def timer(fn: Callable[[], object]) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return timer

