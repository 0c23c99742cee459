"""Every compiled eviction policy vs a plain reference of the published algorithm, on classic
demand-paging streams.

Each step uses one block: a hit touches it; a miss inserts it and, when the tier is over
capacity, evicts one block (never the one just inserted). The references are written from the
published algorithms, evict-then-insert, with plain lists (S3-FIFO: the ghost queue is
consulted when the miss happens, before eviction, as kvplan's tier calls ``on_insert`` first).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from core_helpers import CompiledTier
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kvplan.sim.blocks import BlockStream
from kvplan.sim.policies import eviction_names

Trace = list[tuple[bool, list[int]]]
"""(hit, evicted ids) per step."""


def drive(name: str, cap: int, stream: list[int]) -> Trace:
    """Run ``stream`` (time = step index) through one compiled tier with the named policy."""
    blocks = BlockStream.from_hash_lists([[k] for k in stream], 1)
    ids = dict(zip(stream, blocks.ids.tolist(), strict=True))
    inv = {i: h for h, i in ids.items()}
    tier = CompiledTier(name, cap, blocks.num_blocks, blocks.future_uses())
    out: Trace = []
    for now, key in enumerate(stream):
        k = ids[key]
        if k in tier:
            tier.touch(k, float(now))
            out.append((True, []))
        else:
            out.append((False, [inv[v] for v in tier.insert(k, float(now))]))
    return out


def ref_lru(cap: int, stream: list[int]) -> Trace:
    cache: list[int] = []
    out: Trace = []
    for key in stream:
        if key in cache:
            cache.remove(key)
            cache.append(key)
            out.append((True, []))
            continue
        evicted = [cache.pop(0)] if len(cache) == cap else []
        cache.append(key)
        out.append((False, evicted))
    return out


def ref_fifo(cap: int, stream: list[int]) -> Trace:
    cache: list[int] = []
    out: Trace = []
    for key in stream:
        if key in cache:
            out.append((True, []))
            continue
        evicted = [cache.pop(0)] if len(cache) == cap else []
        cache.append(key)
        out.append((False, evicted))
    return out


def ref_lfu(cap: int, stream: list[int]) -> Trace:
    count: dict[int, int] = {}
    last: dict[int, int] = {}
    out: Trace = []
    for now, key in enumerate(stream):
        if key in count:
            count[key] += 1
            last[key] = now
            out.append((True, []))
            continue
        evicted = []
        if len(count) == cap:
            victim = min(count, key=lambda k: (count[k], last[k]))
            del count[victim], last[victim]
            evicted = [victim]
        count[key], last[key] = 1, now
        out.append((False, evicted))
    return out


def ref_s3fifo(cap: int, stream: list[int]) -> Trace:
    share = max(1, cap // 10)
    ghost_size = max(1, cap - share)
    small: list[int] = []
    main: list[int] = []
    ghost: list[int] = []
    freq: dict[int, int] = {}
    out: Trace = []

    def evict_small() -> int | None:
        while small:
            t = small.pop(0)
            if freq[t] >= 1:
                freq[t] = 0
                main.append(t)
            else:
                del freq[t]
                ghost.append(t)
                if len(ghost) > ghost_size:
                    ghost.pop(0)
                return t
        return None

    def evict_main() -> int | None:
        while main:
            t = main.pop(0)
            if freq[t] > 0:
                freq[t] -= 1
                main.append(t)
            else:
                del freq[t]
                return t
        return None

    for key in stream:
        if key in freq:
            freq[key] = min(freq[key] + 1, 3)
            out.append((True, []))
            continue
        evicted = []
        from_ghost = key in ghost
        if from_ghost:
            ghost.remove(key)
        if len(small) + len(main) == cap:
            first, second = (evict_small, evict_main) if len(small) >= share else (
                evict_main, evict_small)
            v = first()
            v = second() if v is None else v
            evicted = [v]
        if from_ghost:
            main.append(key)
        else:
            small.append(key)
        freq[key] = 0
        out.append((False, evicted))
    return out


def ref_arc(cap: int, stream: list[int]) -> Trace:
    """ARC as in Megiddo & Modha (2003), Fig. 4, cases I-IV."""
    t1: list[int] = []
    t2: list[int] = []
    b1: list[int] = []
    b2: list[int] = []
    p = 0.0
    out: Trace = []

    def replace(x: int) -> int:
        if t1 and ((x in b2 and len(t1) == p) or len(t1) > p):
            v = t1.pop(0)
            b1.append(v)
        else:
            v = t2.pop(0)
            b2.append(v)
        return v

    for x in stream:
        if x in t1 or x in t2:
            (t1 if x in t1 else t2).remove(x)
            t2.append(x)
            out.append((True, []))
            continue
        full = len(t1) + len(t2) == cap
        if x in b1:
            p = min(cap, p + max(1.0, len(b2) / len(b1)))
            ev = [replace(x)] if full else []
            b1.remove(x)
            t2.append(x)
        elif x in b2:
            p = max(0.0, p - max(1.0, len(b1) / len(b2)))
            ev = [replace(x)] if full else []
            b2.remove(x)
            t2.append(x)
        else:
            ev = []
            if len(t1) + len(b1) == cap:
                if len(t1) < cap:
                    b1.pop(0)
                    ev = [replace(x)]
                else:
                    ev = [t1.pop(0)]
            elif len(t1) + len(t2) + len(b1) + len(b2) >= cap:
                if len(t1) + len(t2) + len(b1) + len(b2) == 2 * cap:
                    b2.pop(0)
                if full:
                    ev = [replace(x)]
            t1.append(x)
        out.append((False, ev))
    return out


def ref_belady(cap: int, stream: list[int]) -> Trace:
    cache: dict[int, int] = {}
    """key -> last touch step."""
    out: Trace = []

    def next_use(key: int, now: int) -> float:
        return next((float(j) for j in range(now + 1, len(stream)) if stream[j] == key),
                    float("inf"))

    for now, key in enumerate(stream):
        if key in cache:
            cache[key] = now
            out.append((True, []))
            continue
        evicted = []
        if len(cache) == cap:
            victim = max(cache, key=lambda k: (next_use(k, now), -cache[k]))
            del cache[victim]
            evicted = [victim]
        cache[key] = now
        out.append((False, evicted))
    return out


REFERENCES: dict[str, Callable[[int, list[int]], Trace]] = {
    "lru": ref_lru, "fifo": ref_fifo, "lfu": ref_lfu, "s3fifo": ref_s3fifo, "arc": ref_arc,
    "belady": ref_belady,
}

streams = st.lists(st.integers(0, 12), min_size=1, max_size=120)


def test_every_registered_policy_has_a_reference():
    assert set(REFERENCES) == set(eviction_names())


@settings(max_examples=150, deadline=None)
@given(streams, st.integers(1, 8), st.sampled_from(sorted(REFERENCES)))
@example([0, 0, 2, 1, 2, 3, 4, 0, 0, 1], 2, "arc")  # ghost trimmed before the victim left
def test_policy_matches_reference(stream, cap, name):
    assert drive(name, cap, stream) == REFERENCES[name](cap, stream)


def test_policies_match_reference_on_a_long_skewed_stream():
    rng = np.random.default_rng(7)
    stream = [int(x) for x in rng.zipf(1.3, 1500) % 60]
    for name, ref in REFERENCES.items():
        if name != "belady":
            assert drive(name, 20, stream) == ref(20, stream), name


@settings(max_examples=80, deadline=None)
@given(streams, st.integers(1, 8))
def test_belady_hits_at_least_every_online_policy(stream, cap):
    def hits(name: str) -> int:
        return sum(h for h, _ in drive(name, cap, stream))

    best = hits("belady")
    assert all(best >= hits(n) for n in eviction_names() if n != "belady")


@settings(max_examples=60, deadline=None)
@given(streams, st.integers(1, 8))
def test_lru_hits_never_drop_as_capacity_grows(stream, cap):
    def hits(c: int) -> int:
        return sum(h for h, _ in drive("lru", c, stream))

    assert hits(cap) <= hits(cap + 1) <= hits(cap + 3)
