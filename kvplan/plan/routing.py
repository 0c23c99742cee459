"""Prefix-affinity routing: which replica serves each request (pure and deterministic).

Cache-aware routers (SGLang's router, Dynamo's KV router) send a request where its prefix is
cached, unless that replica is too busy. The plan models them with one documented rule,
consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, SODA 2018) keyed by
the session's first block::

    requests in table (= arrival) order; loads decay with a half-life of LOAD_HALF_LIFE_S
    a session's later requests follow its first one (its KV is on that replica)
    a new session's key = the first block hash of its first prompt (no full block: its id)
    replicas ranked for the key by rendezvous hashing: splitmix64(key ^ salt(r)), highest first
    -> the first ranked replica whose load <= (1 + AFFINITY_SLACK) = 1.1 x the mean load
    load of a replica = input + output tokens routed to it, decayed

So sessions that share a first block (a system prompt, a document) land on the same replica
while it is not overloaded, and the least-loaded replica always qualifies (its load is at most
the mean). Example with 2 replicas and idle loads: sessions keyed h0, h1, h0 go to
rank(h0)[0], rank(h1)[0], rank(h0)[0].
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
from numba import njit

from kvplan.errors import KvplanError
from kvplan.plan.mix import splitmix64
from kvplan.workload import Workload
from kvplan.workload.validate import block_hash_lists

AFFINITY_SLACK = 0.1
"""A replica keeps its affinity while its load is at most 1.1 x the mean load."""
LOAD_HALF_LIFE_S = 30.0
"""Half-life (s) of the routed-token load: roughly the work still outstanding on a replica."""
ROUTING_RULE = (f"prefix affinity: each session goes to one replica, chosen by rendezvous hash "
                f"of its first block and bounded to {1 + AFFINITY_SLACK:g}x the mean load")
"""One-line description for reports."""


def routing_keys(workload: Workload) -> np.ndarray:
    """uint64 key per request: its first block hash, or its session id when it has no block."""
    hashes = block_hash_lists(workload.table)
    offsets = np.asarray(hashes.offsets, dtype=np.int64)
    values = np.asarray(hashes.values, dtype=np.uint64)
    first = np.diff(offsets) > 0
    heads = values[np.minimum(offsets[:-1], max(values.size - 1, 0))] if values.size else \
        np.zeros(first.size, np.uint64)
    sessions = workload.table.column("session_id").to_numpy().astype(np.uint64)
    return np.where(first, heads, sessions)


def assign_replicas(workload: Workload, replicas: int) -> np.ndarray:
    """Replica index (int64, 0..replicas-1) of each request, by the rule in the module doc."""
    if replicas < 1:
        raise KvplanError(f"replicas must be >= 1, got {replicas}")
    t = workload.table
    _, session = np.unique(t.column("session_id").to_numpy(), return_inverse=True)
    work = (t.column("input_tokens").to_numpy().astype(np.float64)
            + t.column("output_tokens").to_numpy().astype(np.float64))
    return _assign(session.reshape(-1).astype(np.int64), routing_keys(workload),
                   t.column("arrival_s").to_numpy().astype(np.float64), work, replicas,
                   AFFINITY_SLACK, LOAD_HALF_LIFE_S)


def route(workload: Workload, replicas: int) -> list[Workload]:
    """The requests each replica serves, as one workload per replica (table order kept)."""
    return split(workload, assign_replicas(workload, replicas), replicas)


def split(workload: Workload, replica_of: np.ndarray, replicas: int) -> list[Workload]:
    """One workload per replica from each request's replica index (table order kept)."""
    out = []
    for r in range(replicas):
        rows = np.flatnonzero(replica_of == r)
        note = f"replica {r + 1} of {replicas} ({ROUTING_RULE})"
        meta = replace(workload.meta, notes=f"{workload.meta.notes}; {note}".lstrip("; "))
        out.append(Workload(table=workload.table.take(pa.array(rows)), meta=meta))
    return out


@njit(cache=True)
def _pick(key: np.uint64, load: np.ndarray, slack: float) -> int:
    """Highest rendezvous weight among replicas with load <= (1 + slack) x mean."""
    limit = max((1.0 + slack) * load.mean(), load.min())
    best, best_w = -1, np.uint64(0)
    for r in range(load.size):
        w = splitmix64(key ^ splitmix64(np.uint64(r + 1) * np.uint64(0x9E3779B97F4A7C15)))
        if load[r] <= limit and (best < 0 or w > best_w):
            best, best_w = r, w
    return best


@njit(cache=True)
def _assign(session: np.ndarray, key: np.ndarray, arrival: np.ndarray, work: np.ndarray,
            replicas: int, slack: float, half_life_s: float) -> np.ndarray:
    n = session.size
    out = np.empty(n, dtype=np.int64)
    placed = np.full(session.max() + 1 if n else 0, -1, dtype=np.int64)
    load = np.zeros(replicas)
    t_prev = arrival[0] if n else 0.0
    for i in range(n):
        load *= 0.5 ** (max(arrival[i] - t_prev, 0.0) / half_life_s)
        t_prev = arrival[i]
        s = session[i]
        if placed[s] < 0:
            placed[s] = _pick(key[i], load, slack)
        out[i] = placed[s]
        load[placed[s]] += work[i]
    return out
