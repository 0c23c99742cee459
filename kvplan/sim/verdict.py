"""Saturation verdict: does a configuration keep up with the load offered to it?

One rule, used by ``kvplan replay`` (every run and variant), by the plan's analytic screen
(every candidate) and by its event verification (every verified candidate)::

    overloaded  requests pile up: the number of requests in the system grows by more than
                GROWTH_OVERLOAD of the offered rate over the arrival span and fewer than
                SERVED_OK of the offered requests per second are served (simulation), or the
                offered rate is above the highest rate the configuration sustains (screen),
                or the run stopped before every request finished
    strained    keeps up, near the edge: the busiest resource above UTIL_STRAINED of its
                capacity (screen), or preemptions for more than PREEMPT_STRAINED of the
                requests (KV blocks run out, work is redone)
    ok          keeps up

The reason always carries the figures behind the verdict: offered and served rate, the
growth of requests in the system, preemptions.

Worked example (the bundled Mooncake trace, llama-3.1-8b on one H100 with HBM only):
3,993 requests arrive over 870 s (4.59 req/s offered) and finish after 2,274 s (1.76 req/s
served); requests in the system grow by 2.8 per second of the arrivals; 563 preemptions ->
``overloaded``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

State = Literal["ok", "strained", "overloaded"]

GROWTH_OVERLOAD = 0.05
"""Growth of requests in the system, as a share of the offered rate, that means a backlog."""
SERVED_OK = 0.95
"""Served / offered rate at or above which a run keeps up whatever its backlog's slope."""
UTIL_STRAINED = 0.9
"""Offered / sustainable rate above which a screened candidate is strained."""
PREEMPT_STRAINED = 0.1
"""Preemptions per request above which a run is strained."""
GRID_POINTS = 200
"""Instants over the arrival span at which requests in the system are counted."""


@dataclass(frozen=True)
class LoadFigures:
    """What the verdict looks at; None = not known for this kind of result."""

    offered_rps: float | None
    """Requests per second offered: requests / arrival span (None: all arrive at once)."""
    served_rps: float | None = None
    """Simulation: finished requests / (last finish - first arrival)."""
    capacity_rps: float | None = None
    """Screen: the highest rate the configuration sustains."""
    growth_rps: float | None = None
    """Simulation: slope of the number of requests in the system over the arrival span."""
    preemptions: int = 0
    requests: int = 0
    finished: int | None = None
    """Requests finished (None: not simulated)."""
    stop_reason: str = "done"
    """Why the run ended: ``done`` or a cap ("simulated-time cap 86400 s reached"...)."""


@dataclass(frozen=True)
class Verdict:
    """ok, strained or overloaded, and the figures behind it in words."""

    state: State
    reason: str

    def words(self) -> str:
        """Example: 'overloaded: 4.59 req/s offered, 1.76 served; ...'."""
        return f"{self.state}: {self.reason}"


def verdict(f: LoadFigures) -> Verdict:
    """The saturation verdict of one run or candidate (rules in the module docstring)."""
    facts = _facts(f)
    stopped = f.finished is not None and f.finished < f.requests
    if stopped or _piles_up(f) or _over_capacity(f):
        return Verdict("overloaded", facts)
    busy = (f.capacity_rps and f.offered_rps is not None
            and f.offered_rps > UTIL_STRAINED * f.capacity_rps)
    thrash = f.requests > 0 and f.preemptions > PREEMPT_STRAINED * f.requests
    return Verdict("strained" if busy or thrash else "ok", facts)


def _piles_up(f: LoadFigures) -> bool:
    if f.offered_rps is None or f.growth_rps is None:
        return False
    slow = f.served_rps is None or f.served_rps < SERVED_OK * f.offered_rps
    return slow and f.growth_rps > GROWTH_OVERLOAD * f.offered_rps


def _over_capacity(f: LoadFigures) -> bool:
    return (f.capacity_rps is not None and f.offered_rps is not None
            and f.offered_rps > f.capacity_rps)


def _facts(f: LoadFigures) -> str:
    """Example: '4.59 req/s offered, 1.76 served; requests in the system grow by 2.83/s;
    563 preemptions'."""
    offered = "all requests at once" if f.offered_rps is None else \
        f"{f.offered_rps:,.2f} req/s offered"
    parts = [offered + (f", {f.served_rps:,.2f} served" if f.served_rps is not None else "")
             + (f", sustains up to {_rate(f.capacity_rps)}" if f.capacity_rps is not None
                else "")]
    if f.growth_rps is not None:
        parts.append(f"requests in the system grow by {f.growth_rps:,.2f}/s"
                     if f.growth_rps > 0.005 else "no backlog growth")
    if f.finished is not None:
        parts.append(f"{f.preemptions:,} preemption{'' if f.preemptions == 1 else 's'}")
        if f.finished < f.requests:
            parts.append(f"stopped ({f.stop_reason}) with {f.requests - f.finished:,} of "
                         f"{f.requests:,} requests unfinished")
    return "; ".join(parts)


def _rate(v: float) -> str:
    return "any rate" if math.isinf(v) else f"{v:,.2f}"


def run_figures(arrival_s: np.ndarray, finish_s: np.ndarray, preemptions: int,
                stop_reason: str = "done") -> LoadFigures:
    """LoadFigures of a simulated run from its requests' arrival and finish times (finish NaN
    = unfinished: it stays in the system).

    Example: 4 requests at t = 0, 1, 2, 3 s finishing at 0.5, 1.5, 2.5, 3.5 s: 1.33 req/s
    offered (4 over 3 s), 1.14 served (4 over 3.5 s), no growth.
    """
    arrival = np.asarray(arrival_s, dtype=np.float64)
    finish = np.asarray(finish_s, dtype=np.float64)
    n = len(arrival)
    done = finish[~np.isnan(finish)]
    if n == 0:
        return LoadFigures(None, None, growth_rps=None, finished=0, stop_reason=stop_reason)
    start, last = float(arrival.min()), float(arrival.max())
    span = last - start
    served = len(done) / max(float(done.max()) - start, 1e-9) if len(done) else 0.0
    return LoadFigures(
        offered_rps=n / span if span > 0 else None, served_rps=served,
        growth_rps=backlog_growth_rps(arrival, finish) if span > 0 else None,
        preemptions=int(preemptions), requests=n, finished=len(done), stop_reason=stop_reason)


def backlog_growth_rps(arrival_s: np.ndarray, finish_s: np.ndarray) -> float:
    """Least-squares slope (requests per second) of the number of requests in the system
    (arrived, not finished; an unfinished request never leaves), counted at GRID_POINTS
    instants over the arrival span. ~0 when the configuration keeps up; ~ offered - served
    rate when a backlog builds."""
    arrival = np.sort(np.asarray(arrival_s, dtype=np.float64))
    finish = np.sort(np.nan_to_num(np.asarray(finish_s, dtype=np.float64), nan=np.inf))
    t = np.linspace(arrival[0], arrival[-1], GRID_POINTS)
    inside = (np.searchsorted(arrival, t, side="right")
              - np.searchsorted(finish, t, side="right")).astype(np.float64)
    return float(np.polyfit(t - t[0], inside, 1)[0])


def screen_figures(rate_rps: float, max_rate_rps: float) -> LoadFigures:
    """LoadFigures of a screened candidate: offered rate against the highest it sustains."""
    return LoadFigures(offered_rps=rate_rps, capacity_rps=max_rate_rps)
