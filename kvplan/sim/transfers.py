"""Links between tiers, with processor sharing of each link's bandwidth.

Four links, named as in the hardware profile::

    SSD --ssd_read--> DRAM --h2d--> HBM
    SSD <-ssd_write-- DRAM <-d2h--- HBM

A transfer moves a batch of blocks as one unit. Alone on its link it takes
``latency + nbytes / bandwidth(nbytes)`` (the profile's size-dependent curve), exactly
``LinkSpec.transfer_time_s``. It spends ``latency`` as a pure delay (setup, DMA descriptor,
NVMe command) and then needs ``work_s = nbytes / bandwidth(nbytes)`` seconds of the whole link.
Transfers in their data phase share the link by processor sharing: with ``k`` of them active
each one progresses at ``1/k`` of the link. The link keeps a virtual clock ``v`` (service
each active transfer has received); a transfer entering at ``v0`` ends when ``v = v0 + work_s``.

Worked example: two 1 GiB transfers, bandwidth 25 GiB/s, latency 10 us, both started at t=0.
Each needs work 0.04 s; both enter at 10 us, share the link, and both end at
10 us + 2 x 0.04 s = 0.08001 s (alone each would end at 0.04001 s).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from kvplan.sim.coverage import Range

LINK_NAMES = ("ssd_read", "h2d", "d2h", "ssd_write")
SSD_READ, H2D, D2H, SSD_WRITE = range(4)
_EPS_S = 1e-12


@dataclass(slots=True, eq=False)
class Transfer:
    """One batched transfer of ``blocks`` over one link (mutable while in flight)."""

    link: int
    nbytes: int
    work_s: float
    blocks: list[int]
    kind: str
    """``load`` (for a request), ``stage`` (prefetch), ``offload`` or ``swap``."""
    req: object = None
    """The request (a ``kvstore.Req``) that started this load, or None."""
    finish_v: float = 0.0
    waiters: list = field(default_factory=list)
    """Requests parked until this transfer lands (loads of blocks already in flight)."""


class Link:
    """One link: transfers in their latency phase, then processor-shared data phase."""

    def __init__(self, index: int, latency_s: float, time_fn: Callable[[int], float],
                 timeline: BusyTimeline, sizes: Range | None = None) -> None:
        self.index = index
        self.sizes = sizes or Range()
        """Transfer sizes seen, against the link's calibrated range (kvplan.sim.coverage)."""
        self.latency_s = latency_s
        self._time_fn = time_fn
        self._timeline = timeline
        self._pending: list[tuple[float, int, Transfer]] = []
        self._active: list[tuple[float, int, Transfer]] = []
        self._seq = 0
        self._v = 0.0
        self._last_t = 0.0
        self.version = 0
        self.bytes_total = 0
        self.busy_s = 0.0

    def work_s(self, nbytes: int) -> float:
        """Exclusive link time of ``nbytes`` after the latency: ``nbytes / bandwidth(nbytes)``."""
        self.sizes.add(nbytes)
        return max(self._time_fn(nbytes) - self.latency_s, 0.0)

    def start(self, now: float, transfer: Transfer) -> float:
        """Queue ``transfer`` at ``now``; returns the link's next wake time."""
        self.advance(now)
        self._seq += 1
        heapq.heappush(self._pending, (now + self.latency_s, self._seq, transfer))
        self.bytes_total += transfer.nbytes
        self.version += 1
        return self.next_time()

    def next_time(self) -> float:
        """Real time of the next phase change (a transfer entering or finishing)."""
        t_enter = self._pending[0][0] if self._pending else float("inf")
        if not self._active:
            return t_enter
        t_done = self._last_t + (self._active[0][0] - self._v) * len(self._active)
        return min(t_enter, t_done)

    def advance(self, now: float) -> list[Transfer]:
        """Move the link's clock to ``now``; returns the transfers that finished, in order."""
        done: list[Transfer] = []
        while True:
            t_next = self.next_time()
            if t_next > now + _EPS_S:
                break
            t_next = max(t_next, self._last_t)
            self._move_to(t_next)
            if self._pending and self._pending[0][0] <= t_next + _EPS_S:
                _, seq, tr = heapq.heappop(self._pending)
                tr.finish_v = self._v + tr.work_s
                heapq.heappush(self._active, (tr.finish_v, seq, tr))
            else:
                done.append(heapq.heappop(self._active)[2])
        self._move_to(max(now, self._last_t))
        if done:
            self.version += 1
        return done

    def _move_to(self, t: float) -> None:
        k = len(self._active)
        if k and t > self._last_t:
            self._v += (t - self._last_t) / k
            self.busy_s += t - self._last_t
            self._timeline.add(self.index, self._last_t, t)
        self._last_t = t

    def account(self, nbytes: int, t0: float, t1: float) -> None:
        """Count a transfer timed outside the link (the oracle bound's loads)."""
        self.bytes_total += nbytes
        t0 = max(t0, 0.0)
        if t1 > t0:
            self.busy_s += t1 - t0
            self._timeline.add(self.index, t0, t1)

    @property
    def in_flight(self) -> int:
        return len(self._pending) + len(self._active)


class BusyTimeline:
    """Busy seconds of each link per simulated second (for link utilization over time)."""

    def __init__(self, n_links: int) -> None:
        self.busy: list[dict[int, float]] = [{} for _ in range(n_links)]

    def add(self, link: int, t0: float, t1: float) -> None:
        """Add the busy interval [t0, t1) of ``link``, split at whole seconds."""
        bins = self.busy[link]
        while t0 < t1:
            sec = int(t0)
            end = min(t1, sec + 1.0)
            bins[sec] = bins.get(sec, 0.0) + (end - t0)
            t0 = end


def just_in_time_stall_s(free_at_s: float, work_s: float, need_at_s: float) -> tuple[float, float]:
    """Oracle prefetch on one link: the load runs ``work_s`` ending at ``need_at_s`` if the link
    is free by then, else as early as the link allows. Returns (stall_s, new free_at_s).

    Worked example: the link is busy until 5.0 s, a load of 2.0 s is needed at 6.0 s: it runs
    5.0 -> 7.0 s, stall 1.0 s. Needed at 9.0 s instead: it runs 7.0 -> 9.0 s, stall 0.
    """
    start = max(free_at_s, need_at_s - work_s)
    end = start + work_s
    return max(end - need_at_s, 0.0), end
