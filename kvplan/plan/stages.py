"""Wall time, CPU time and peak memory of each stage of a plan (``kvplan plan --profile-stages``).

The planner reports progress as ``tick(stage, done, total)``; a :class:`StageClock` used as
that callback opens a stage at its first tick and closes it when the next stage starts (or at
:meth:`StageClock.close`), so stages are timed without the planner knowing. Memory is this
process's resident set: a sampler thread reads /proc/self/statm every SAMPLE_S, and the
kernel's high-water mark (``ru_maxrss``) catches a peak between samples when it rises
during the stage. Event verification runs in worker processes (Ray tasks or the local pool):
their CPU time and peak memory are reported per run (kvplan.plan.verify.RunOutput) and
added to the verify stage here.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, replace

SAMPLE_S = 0.02
"""Seconds between two samples of the resident set."""
MIB = 1024 * 1024


@dataclass(frozen=True)
class StageFigures:
    """What one stage cost."""

    stage: str
    wall_s: float
    cpu_s: float
    """CPU seconds of this process (user + system) during the stage."""
    peak_rss_mib: float
    """This process's peak resident memory during the stage (MiB)."""
    workers_cpu_s: float | None = None
    """CPU seconds of the stage's work in worker processes (None: none ran)."""
    workers_peak_rss_mib: float | None = None
    """Largest peak resident memory of one worker process (MiB)."""


def rss_mib() -> float:
    """This process's resident memory now (MiB); its high-water mark where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (MiB; ru_maxrss is KiB on Linux, B on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


class StageClock:
    """A progress callback that times stages; :attr:`stages` lists the closed ones in order."""

    def __init__(self) -> None:
        self.stages: list[StageFigures] = []
        self._name: str | None = None
        self._lock = threading.Lock()
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def __call__(self, stage: str, done: int = 0, total: int = 0) -> None:
        if stage != self._name:
            self._open(stage)

    def _open(self, stage: str) -> None:
        self._finish()
        self._name = stage
        self._wall, self._cpu, self._hwm = time.perf_counter(), time.process_time(), \
            peak_rss_mib()
        with self._lock:
            self._peak = rss_mib()

    def _finish(self) -> None:
        if self._name is None:
            return
        hwm = peak_rss_mib()
        with self._lock:
            peak = max(self._peak, rss_mib())
        if hwm > self._hwm:  # the process's high-water mark rose during this stage
            peak = max(peak, hwm)
        self.stages.append(StageFigures(self._name, time.perf_counter() - self._wall,
                                        time.process_time() - self._cpu, peak))
        self._name = None

    def close(self) -> list[StageFigures]:
        """Close the open stage, stop sampling; returns :attr:`stages`."""
        self._finish()
        self._stop.set()
        return self.stages

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            now = rss_mib()
            with self._lock:
                self._peak = max(self._peak, now)


def with_workers(stages: list[StageFigures], stage: str, cpu_s: float, peak_rss_mib: float
                 ) -> list[StageFigures]:
    """``stages`` with worker processes' CPU and largest peak memory set on ``stage``."""
    return [replace(s, workers_cpu_s=cpu_s, workers_peak_rss_mib=peak_rss_mib)
            if s.stage == stage else s for s in stages]
