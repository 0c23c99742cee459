"""Links with processor sharing, and the transfer manager that runs the core's moves on them.

Four links, named as in the hardware profile (kvplan.hierarchy.Link)::

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

The :class:`TransferManager` turns the core's moves (kvplan.sim.core.moves) into transfers and,
when they finish, lands them through the core's rules (which may queue the next hop), in the
order they were started; it returns the requests whose loads have all landed, for the engine
to wake. Cache mode applies the same moves at once instead (kvplan.sim.core.rules.drain).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kvplan.hierarchy import Link, hop_link
from kvplan.sim.core import moves, rules
from kvplan.sim.core.layout import HBM
from kvplan.sim.coverage import Range
from kvplan.sim.request import Req

_EPS_S = 1e-12
SWAP = -1
"""Kind of a transfer that moves a request's private blocks (bytes only, no core move)."""


@dataclass(slots=True, eq=False)
class Transfer:
    """One batched transfer over one link (mutable while in flight)."""

    seq: int
    """Start order: transfers finishing together land in this order."""
    link: int
    nbytes: int
    work_s: float
    move: moves.Move | None
    """The core move it carries; None for bytes only (a swap)."""
    req: Req | None = None
    """The request whose load this is (woken when the last hop lands), or None."""
    waiters: list = field(default_factory=list)
    """Other requests waiting on it (they hit its blocks while in flight)."""
    finish_v: float = 0.0


class SharedLink:
    """One link: transfers in their latency phase, then a processor-shared data phase."""

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
        self.finished: list[tuple[float, Transfer]] = []
        """(time, transfer) of transfers finished and not yet collected (``collect``)."""
        self._v = 0.0
        self._last_t = 0.0
        self.bytes_total = 0
        self.busy_s = 0.0

    def work_s(self, nbytes: int) -> float:
        """Exclusive link time of ``nbytes`` after the latency: ``nbytes / bandwidth(nbytes)``."""
        self.sizes.add(nbytes)
        return max(self._time_fn(nbytes) - self.latency_s, 0.0)

    def alone_s(self, nbytes: int) -> float:
        """Time of ``nbytes`` alone on the link, latency included (nothing recorded)."""
        return self._time_fn(nbytes)

    def start(self, now: float, transfer: Transfer) -> None:
        """Queue ``transfer`` at ``now`` (transfers that finish by then are kept in
        ``finished``)."""
        self.advance(now)
        heapq.heappush(self._pending, (now + self.latency_s, transfer.seq, transfer))
        self.bytes_total += transfer.nbytes

    def next_time(self) -> float:
        """Real time of the next phase change (a transfer entering or finishing), or of the
        first finished transfer not yet collected."""
        if self.finished:
            return self.finished[0][0]
        return self._next_phase()

    def _next_phase(self) -> float:
        t_enter = self._pending[0][0] if self._pending else float("inf")
        if not self._active:
            return t_enter
        t_done = self._last_t + (self._active[0][0] - self._v) * len(self._active)
        return min(t_enter, t_done)

    def advance(self, now: float) -> None:
        """Move the link's clock to ``now``; transfers that finish go to ``finished``."""
        while True:
            t_next = self._next_phase()
            if t_next > now + _EPS_S:
                break
            t_next = max(t_next, self._last_t)
            self._move_to(t_next)
            if self._pending and self._pending[0][0] <= t_next + _EPS_S:
                _, seq, tr = heapq.heappop(self._pending)
                tr.finish_v = self._v + tr.work_s
                heapq.heappush(self._active, (tr.finish_v, seq, tr))
            else:
                self.finished.append((t_next, heapq.heappop(self._active)[2]))
        self._move_to(max(now, self._last_t))

    def collect(self, now: float) -> list[Transfer]:
        """Advance to ``now``; the finished transfers not collected yet, in finishing order."""
        self.advance(now)
        done = [tr for _, tr in self.finished]
        self.finished.clear()
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


class TransferManager:
    """Runs the core's moves on the links; lands them through the rules when they finish."""

    def __init__(self, links: list[SharedLink], state: tuple[np.ndarray, np.ndarray],
                 block_bytes: int) -> None:
        self.links = links
        self.m, self.f = state
        self.block_bytes = block_bytes
        self._seq = 0
        self._by_id: dict[int, Transfer] = {}
        """In-flight transfers carrying a core move, by move id (the parent of a next hop)."""
        self._next = [ln.next_time() for ln in links]
        """Each link's next_time, kept current: a link changes only when a transfer starts
        on it or it is collected, both here."""

    def start(self, now: float, queued: list[moves.Move], req: Req | None = None,
              extra_h2d_bytes: int = 0) -> list[Transfer]:
        """Start a transfer per move; ``req`` owns the LOAD moves (and gets
        ``extra_h2d_bytes`` on its DRAM -> HBM load). A next hop inherits its parent's
        request and waiters."""
        out = []
        for mv in queued:
            parent = self._by_id.pop(mv.parent, None)
            own = parent.req if parent else (req if mv.kind == moves.LOAD else None)
            extra = extra_h2d_bytes if own is req and mv.kind == moves.LOAD and mv.dst == HBM \
                and parent is None else 0
            tr = self._new(now, hop_link(mv.src, mv.dst), len(mv.blocks) * self.block_bytes + extra,
                           mv, own)
            if parent is not None:
                tr.waiters = parent.waiters
            self._by_id[mv.id] = tr
            out.append(tr)
        return out

    def start_bytes(self, now: float, link: Link, nbytes: int, req: Req | None = None
                    ) -> Transfer:
        """A bytes-only transfer (a swap out, or a swap-in with no block to load)."""
        return self._new(now, link, nbytes, None, req)

    def _new(self, now: float, link: int, nbytes: int, mv: moves.Move | None,
             req: Req | None) -> Transfer:
        ln = self.links[link]
        self._seq += 1
        tr = Transfer(self._seq, link, nbytes, ln.work_s(nbytes), mv, req)
        ln.start(now, tr)
        self._next[link] = ln.next_time()
        return tr

    def waiting_on(self, move_id: int) -> Transfer:
        """The in-flight transfer carrying move ``move_id`` (a load others may wait for)."""
        return self._by_id[move_id]

    def next_time(self) -> float:
        """When the next transfer may enter its data phase or finish (inf: none in flight)."""
        return min(self._next)

    def land_due(self, now: float) -> list[Req]:
        """Land every transfer finished by ``now``, in start order (next hops that finish
        at once included); returns the requests whose last awaited load landed."""
        ready: list[Req] = []
        while True:
            done = []
            for i, ln in enumerate(self.links):
                if self._next[i] <= now + _EPS_S:
                    done += ln.collect(now)
                    self._next[i] = ln.next_time()
            if not done:
                return ready
            for tr in sorted(done, key=_start_order):
                self._land(tr, now, ready)

    def _land(self, tr: Transfer, now: float, ready: list[Req]) -> None:
        mv = tr.move
        if mv is not None:
            rules.land(self.m, self.f, mv.id, mv.kind, mv.src, mv.dst, mv.blocks)
            self.start(now, moves.take(self.m))
            self._by_id.pop(mv.id, None)
            if mv.dst != HBM:
                return
        if tr.link == Link.H2D and (tr.req is not None or tr.waiters):
            for req in ([tr.req] if tr.req is not None else []) + tr.waiters:
                req.pending -= 1
                if req.pending == 0:
                    ready.append(req)

    def land_loads_now(self, queued: list[moves.Move]) -> list[moves.Move]:
        """Apply the LOAD moves among ``queued`` at once through the rules, their next hops
        too (the oracle bound's loads); returns the other moves, for the links."""
        rest: list[moves.Move] = []
        while queued:
            mv = queued.pop(0)
            if mv.kind != moves.LOAD:
                rest.append(mv)
                continue
            rules.land(self.m, self.f, mv.id, mv.kind, mv.src, mv.dst, mv.blocks)
            queued += moves.take(self.m)
        return rest


def _start_order(tr: Transfer) -> int:
    return tr.seq


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


def just_in_time_stall_s(free_at_s: float, work_s: float, need_at_s: float,
                         earliest_s: float = -math.inf) -> tuple[float, float]:
    """Oracle prefetch on one link: the load runs ``work_s`` ending at ``need_at_s`` if the link
    is free by then (and it may start by ``earliest_s``), else as early as both allow.
    Returns (stall_s, new free_at_s).

    Worked example: the link is busy until 5.0 s, a load of 2.0 s is needed at 6.0 s: it runs
    5.0 -> 7.0 s, stall 1.0 s. Needed at 9.0 s instead: it runs 7.0 -> 9.0 s, stall 0; and
    with ``earliest_s`` 8.0 s (the request arrives then) it runs 8.0 -> 10.0 s, stall 1.0 s.
    """
    start = max(free_at_s, need_at_s - work_s, earliest_s)
    end = start + work_s
    return max(end - need_at_s, 0.0), end
