"""Every compiled policy vs its plain reference class (tests/reference), with pins.

The compiled policies skip pinned keys cheaply (LRU moves them to the recent end as it
passes them; ARC and S3-FIFO search each queue once per ``victims`` call); the references do
the plain thing (move pinned keys one at a time, search every queue from its oldest key for
every victim). Random streams of insert / touch / pin / unpin / evict / remove must name the
same victims in the same order.
"""

from __future__ import annotations

from core_helpers import CompiledTier
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import make_eviction
from reference.tiers import Tier

from kvplan.sim.blocks import BlockStream
from kvplan.sim.policies import eviction_names

OPS = st.lists(st.tuples(st.sampled_from(["ins", "pin", "unpin", "touch", "evict", "remove"]),
                         st.integers(0, 11)), max_size=150)


def replay(tier, ops: list[tuple[str, int]]) -> list[list[int]]:
    """Apply ``ops`` at times 0, 1, ... (skipping those invalid in the current state); the
    victims of each."""
    out = []
    for now, (op, k) in enumerate(ops):
        resident = k in tier
        if op == "ins" and not resident and tier.pinned_blocks < tier.capacity_blocks:
            out.append(tier.insert(k, float(now)))
        elif op == "pin" and resident:
            tier.pin(k)
        elif op == "unpin" and tier.refcount(k) > 0:
            tier.unpin(k)
        elif op == "touch" and resident:
            tier.touch(k, float(now))
        elif op == "evict":
            out.append(tier.evict(k % 4, float(now)) if isinstance(tier, CompiledTier)
                       else tier.evict(k % 4))
        elif op == "remove" and resident and tier.refcount(k) == 0:
            tier.remove(k)
    return out


@settings(max_examples=300, deadline=None)
@given(OPS, st.integers(1, 6), st.sampled_from(eviction_names()))
def test_policy_matches_reference_with_pins(ops, cap, name):
    future = BlockStream.from_hash_lists([[k] for _, k in ops] or [[0]], 1)
    uses = future.future_uses()
    ids = list(dict.fromkeys(k for _, k in ops))
    # keys 0..11 are dense ids already when every key appears; map for the oracle's future
    dense = {k: i for i, k in enumerate(ids)}
    ops = [(op, dense[k]) for op, k in ops]
    ref = Tier("t", cap, make_eviction(name, cap, _future(uses)))
    got = replay(CompiledTier(name, cap, max(len(ids), 1), uses), ops)
    assert got == replay(ref, ops)


def _future(uses):
    """The reference oracle's view of the same future (use times by block)."""
    from reference import FutureUses

    offsets = uses.offsets
    keys = [k for k in range(len(offsets) - 1) for _ in range(offsets[k + 1] - offsets[k])]
    return FutureUses(keys, uses.distinct_times[uses.ranks], len(offsets) - 1)


def test_lru_passes_pinned_keys_to_the_recent_end():
    t = CompiledTier("lru", 4)
    for k in (1, 2, 3, 4):
        t.insert(k, 0.0)
    t.pin(1)
    t.pin(2)
    assert t.insert(5, 1.0) == [3]               # 1, 2 passed: order 4 5 1 2
    assert t.insert(6, 2.0) == [4]               # order 5 1 2 6
    t.unpin(2)
    assert t.insert(7, 3.0) == [5]               # order 1 2 6 7
    assert t.insert(8, 4.0) == [2]               # 1 passed, 2 goes: order 6 7 8 1
    t.unpin(1)
    assert [t.insert(k, 5.0) for k in (9, 10, 11, 12)] == [[6], [7], [8], [1]]


def test_lru_moves_runs_of_pinned_keys_in_order():
    """Runs of pinned neighbours move to the recent end as one splice, order kept."""
    t = CompiledTier("lru", 6)
    for k in (1, 2, 3, 4, 5, 6):
        t.insert(k, 0.0)
    for k in (1, 2, 4, 5):
        t.pin(k)
    assert t.insert(7, 1.0) == [3]               # run 1 2 passed: order 4 5 6 7 1 2
    assert t.insert(8, 2.0) == [6]               # run 4 5 passed: order 7 1 2 8 4 5
    for k in (1, 2, 4, 5):
        t.unpin(k)
    assert [t.insert(k, 3.0) for k in range(9, 15)] == [[7], [1], [2], [8], [4], [5]]
