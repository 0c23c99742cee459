"""The compiled all-LRU replay equals the class-based replay, on random streams and configs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.sim.blocks import BlockStream
from kvplan.sim.cache import CacheSpec, _ClassReplay
from kvplan.sim.cache_lru import replay_lru


def random_stream(seed: int, n_requests: int, universe: int) -> BlockStream:
    """Requests that share prefixes: each extends a random earlier prompt or starts a new one."""
    rng = np.random.default_rng(seed)
    prompts: list[list[int]] = []
    next_hash = 1
    for _ in range(n_requests):
        if prompts and rng.random() < 0.7:
            base = prompts[rng.integers(len(prompts))]
            head = base[: rng.integers(0, len(base) + 1)]
        else:
            head = []
        tail = list(range(next_hash, next_hash + int(rng.integers(0, 5))))
        next_hash += len(tail)
        prompts.append(head + tail)
    return BlockStream.from_hash_lists(prompts, 16)


def assert_same(stream: BlockStream, spec: CacheSpec) -> None:
    a, b = replay_lru(stream, spec), _ClassReplay(stream, spec).run()
    assert np.array_equal(a.hit_blocks, b.hit_blocks)
    assert a.link_blocks.tolist() == b.link_blocks.tolist()
    assert a.peak_blocks.tolist() == b.peak_blocks.tolist()


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 60),
       st.tuples(st.integers(0, 8), st.integers(0, 10), st.integers(0, 14)),
       st.sampled_from(["write-through", "write-through-selective", "write-back"]),
       st.booleans(), st.integers(1, 3))
def test_compiled_lru_equals_classes(seed, n_requests, caps, write, inclusive, threshold):
    stream = random_stream(seed, n_requests, 40)
    assert_same(stream, CacheSpec(caps, write=write, inclusive=inclusive,
                                  store_threshold=threshold))


def test_compiled_lru_equals_classes_on_a_longer_stream():
    stream = random_stream(3, 600, 400)
    for write in ("write-through", "write-through-selective", "write-back"):
        for inclusive in (True, False):
            assert_same(stream, CacheSpec((20, 60, 150), write=write, inclusive=inclusive))
