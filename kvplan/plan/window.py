"""``--verify-window``: event verification on the busiest stretch of a long trace.

A full event replay of a week of traffic costs minutes per candidate. With
``verify_window_s = W`` each verified candidate replays only the requests arriving in the
busiest W seconds (most prompt + output tokens arriving) plus the W seconds before them as
warm-up, which fill the
caches and queues; the simulated figures are taken over the window's requests alone::

    arrivals   |....:..::.:...|:::::::::::::::|..:...
               start - W       start           start + W
               warm-up:        window: figures taken here
               replayed, not counted

Opt-in only, and stated in the result (``PlanResult.notes``, plan.json) because it changes
what "verified" means: the rest of the trace is screened, not simulated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow.compute as pc

from kvplan.errors import KvplanError
from kvplan.workload import Workload


@dataclass(frozen=True)
class Window:
    """Arrival times (s) of the replayed and the counted requests."""

    start_s: float
    """First arrival counted."""
    end_s: float
    """Arrivals before this are counted (exclusive)."""
    warmup_s: float
    """Requests arriving this long before ``start_s`` are replayed but not counted."""

    def words(self) -> str:
        return (f"event verification replayed the busiest {self.end_s - self.start_s:,.0f} s "
                f"of arrivals ({self.start_s:,.0f}-{self.end_s:,.0f} s) after "
                f"{self.warmup_s:,.0f} s of warm-up, not the whole trace (--verify-window); "
                "its figures are over that window's requests")


def busiest_window(arrival_s: np.ndarray, window_s: float, work: np.ndarray | None = None
                   ) -> Window:
    """The ``window_s`` span starting at an arrival with the most ``work`` arriving in it
    (tokens; None = one per request; earliest on ties), warm-up ``window_s``.

    Example: arrivals [0, 1, 10, 11, 12, 30] s, work 1 each, window 5 s -> start 10, end 15.
    """
    if window_s <= 0:
        raise KvplanError(f"--verify-window must be > 0 seconds, got {window_s:g}")
    a = np.asarray(arrival_s, dtype=np.float64)
    if a.size == 0:
        raise KvplanError("--verify-window: the workload has no requests")
    w = np.ones(a.size) if work is None else np.asarray(work, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(w)])
    load = cum[np.searchsorted(a, a + window_s, side="left")] - cum[:-1]
    start = float(a[int(np.argmax(load))])
    return Window(start, start + window_s, window_s)


def cut(workload: Workload, window: Window) -> Workload:
    """The requests replayed for ``window``: arrivals in [start - warm-up, end)."""
    t = workload.table
    arr = t.column("arrival_s")
    keep = pc.and_(pc.greater_equal(arr, window.start_s - window.warmup_s),
                   pc.less(arr, window.end_s))
    note = f"verify window {window.start_s:g}-{window.end_s:g} s, warm-up {window.warmup_s:g} s"
    return Workload(table=t.filter(keep), meta=replace(
        workload.meta, notes=f"{workload.meta.notes}; {note}".lstrip("; ")))
