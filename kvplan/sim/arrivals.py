"""When each request arrives in event mode: the arrival source the engine asks.

``open``: every request arrives at its trace time (``arrival_s``), whatever the server does.

``closed`` (the default): a request with **parents** is released when its last parent
finishes on the simulated server plus its **gap**; a request without parents (a session's
first turn, a Dynamo graph's root, every request of a trace without sessions) arrives at its
trace time. Parents (:func:`session_graph`):

* the workload's ``wait_for`` request ids where the row has them (Dynamo agentic graphs: a
  node waits for all its parents, a join node for the last of them);
* else the previous turn of the request's session (a chat or an agent run).

The gap, per request with parents:

1. recorded: ``delay_s + tool_wait_s`` where either is present (nulls count 0; Dynamo's
   ``delay`` is the non-tool wait after the dependencies finish, ``tool_wait_ms`` the tool's);
2. else the trace's inter-turn gap less the parent's response time, which traces do not
   record, taken at the synthesizer's nominal 50 tok/s (``ArrivalSpec.response_s_per_token``):
   ``arrival - max over parents (parent arrival + parent output_tokens x 0.02 s)``. For
   synthesized arrivals (ShareGPT, agent logs, ``trace synth``) this is the sampled think or
   tool time itself;
3. where that is negative (the trace sent the turn before the nominal response had streamed,
   so it records no usable gap), a think time drawn from the synthesizer's distribution
   (``kvplan.trace.arrivals``, lognormal median 10 s, sigma 1.0, seed 0).

Worked example: turn 0 arrives at 5 s and finishes at 7.5 s on the server; turn 1 has
``tool_wait_s = 2`` -> closed loop releases it at 9.5 s (open loop: its trace time).

A parent that is not in the workload (a replica's or a window's share of a trace) counts as
finished: its child is a root. Open loop is closed loop over an empty graph, so both run the
same code: a trace without sessions replays identically in either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from kvplan.sim.events import PRIO_ARRIVAL, Arrival, Event
from kvplan.trace.arrivals import ArrivalSpec
from kvplan.workload import Workload

Scheduled = list[tuple[float, int, Event]]
_NONE: Scheduled = []
_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class SessionGraph:
    """Each request's parents (rows of the table, CSR) and its gap after the last one."""

    offsets: np.ndarray
    """int64 (n + 1): request ``i``'s parents are ``parents[offsets[i]:offsets[i + 1]]``."""
    parents: np.ndarray
    """int64 rows of the table."""
    gap_s: np.ndarray
    """float64: seconds from the last parent's finish to the release (0 for roots)."""


def session_graph(table: pa.Table, spec: ArrivalSpec | None = None) -> SessionGraph:
    """Parents and gaps of every request of a workload table (module docstring)."""
    spec = spec or ArrivalSpec()
    n = table.num_rows
    counts, parents = _parents(table)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    gap = np.zeros(n)
    has = counts > 0
    if not has.any():
        return SessionGraph(offsets, parents, gap)
    arrival = table.column("arrival_s").to_numpy()
    out = table.column("output_tokens").to_numpy().astype(np.float64)
    ready = arrival[parents] + out[parents] * spec.response_s_per_token
    latest = np.maximum.reduceat(ready, offsets[:-1][has]) if len(ready) else ready
    traced = np.zeros(n)
    traced[has] = arrival[has] - latest
    delay = _optional(table, "delay_s")
    wait = table.column("tool_wait_s").to_numpy(zero_copy_only=False)
    recorded = ~np.isnan(delay) | ~np.isnan(wait)
    think = spec.think_time.sample(spec.rngs()[1], n)
    gap = np.where(recorded, np.nan_to_num(delay) + np.nan_to_num(wait),
                   np.where(traced >= 0, traced, think))
    return SessionGraph(offsets, parents, np.where(has, gap, 0.0))


def _parents(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(parent count per row, parent rows flat in row order): ``wait_for`` where given, else
    the previous row of the same session; parents absent from the table are dropped."""
    n = table.num_rows
    session = table.column("session_id").to_numpy()
    by_session = np.argsort(session, kind="stable")
    prev = np.full(n, -1, dtype=np.int64)
    same = session[by_session[1:]] == session[by_session[:-1]]
    prev[by_session[1:][same]] = by_session[:-1][same]
    given = np.zeros(n, dtype=bool)
    child, parent = _EMPTY, _EMPTY
    if "wait_for" in table.column_names:
        col = table.column("wait_for").combine_chunks()
        given = col.is_valid().to_numpy(zero_copy_only=False)
        offs = np.asarray(col.offsets, dtype=np.int64)
        ids = table.column("request_id").to_numpy()
        flat = np.asarray(col.values.to_numpy(zero_copy_only=False)[offs[0]:offs[-1]],
                          dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        pos = np.minimum(np.searchsorted(ids[order], flat), max(n - 1, 0))
        rows = np.where(ids[order][pos] == flat, order[pos], -1)
        owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(offs))
        keep = given[owner] & (rows >= 0)
        child, parent = owner[keep], rows[keep]
    default = np.flatnonzero(~given & (prev >= 0))
    child = np.concatenate([child, default])
    parent = np.concatenate([parent, prev[default]])
    order = np.argsort(child, kind="stable")
    return np.bincount(child, minlength=n).astype(np.int64), parent[order]



def _optional(table: pa.Table, name: str) -> np.ndarray:
    """A nullable float column as float64 with NaN for null (all NaN when absent)."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


class Arrivals:
    """The engine's arrival source: roots arrive one after another at their trace times
    (each arrival schedules the next, so the queue stays small); a finished request
    releases the children whose parents have all finished."""

    def __init__(self, arrival_s: np.ndarray, graph: SessionGraph | None) -> None:
        n = len(arrival_s)
        self._arrival = arrival_s.tolist()
        counts = np.zeros(n, dtype=np.int64) if graph is None else np.diff(graph.offsets)
        roots = np.flatnonzero(counts == 0)
        roots = roots[np.argsort(arrival_s[roots], kind="stable")]
        self._first = int(roots[0]) if len(roots) else -1
        nxt = np.full(n, -1, dtype=np.int64)
        nxt[roots[:-1]] = roots[1:]
        self._next = nxt.tolist()
        self.planned_s = np.where(counts == 0, arrival_s, np.nan)
        """Arrival times known before the run: trace times of roots, NaN for the rest."""
        self._pending = counts.tolist()
        self._ready = [-np.inf] * n
        self._children: dict[int, list[int]] = {}
        self._gap: list[float] = []
        if graph is not None and len(graph.parents):
            child = np.repeat(np.arange(n), counts)
            for p, c in zip(graph.parents.tolist(), child.tolist(), strict=True):
                self._children.setdefault(p, []).append(c)
            self._gap = graph.gap_s.tolist()

    def first(self) -> Scheduled:
        """The first root's arrival (nothing for an empty workload)."""
        i = self._first
        return [] if i < 0 else [(self._arrival[i], PRIO_ARRIVAL, Arrival(i))]

    def after_arrival(self, i: int) -> Scheduled:
        """Request ``i`` arrived: if it is a root, the next root's arrival."""
        nxt = self._next[i]
        return _NONE if nxt < 0 else [(self._arrival[nxt], PRIO_ARRIVAL, Arrival(nxt))]

    def after_finish(self, i: int, now: float) -> Scheduled:
        """Request ``i`` finished at ``now``: its children whose parents have all finished
        are released at the last parent's finish + their gap."""
        kids = self._children.get(i)
        if kids is None:
            return _NONE
        out: Scheduled = []
        for c in kids:
            self._pending[c] -= 1
            self._ready[c] = max(self._ready[c], now)
            if self._pending[c] == 0:
                out.append((self._ready[c] + self._gap[c], PRIO_ARRIVAL, Arrival(c)))
        return out


def make_arrivals(workload: Workload, mode: str) -> Arrivals:
    """The arrival source of ``mode`` (``closed`` or ``open``) for ``workload``."""
    arrival = workload.table.column("arrival_s").to_numpy()
    graph = session_graph(workload.table) if mode == "closed" else None
    return Arrivals(arrival, graph)
