"""The shared decode clock: lazy decoder fields, due and finish ticks (hand-computed)."""

from __future__ import annotations

from kvplan.sim.decoding import Decoders
from kvplan.sim.kvstore import Req


def _decoder(seq: int, computed: int, blocks: int, out_left: int) -> Req:
    req = Req(seq, seq, 0.0, computed, 1 + out_left, [])
    req.computed, req.generated, req.n_private, req.run_seq = computed, 1, blocks, seq
    return req


def test_docstring_example_due_finish_and_lazy_fields():
    dec = Decoders(512)
    dec.tick = 10
    req = _decoder(1, 1000, 2, 30)
    dec.add(req)
    assert dec.context_tokens() == 1001
    assert dec.crossing_within(24) == [] and dec.crossing_within(25) == [(24, req)]
    assert dec.min_left() == 30
    assert dec.advance(10) == []
    dec.sync(req)
    assert (req.computed, req.generated, dec.count) == (1010, 11, 0)


def test_due_and_finishing_members_come_in_running_order():
    dec = Decoders(16)
    late = _decoder(2, 16, 1, 3)                 # full block: due now, finishes at tick 3
    early = _decoder(1, 10, 1, 3)                # 6 tokens of room: due at tick 6
    dec.add(late)
    dec.add(early)
    assert dec.context_tokens() == 17 + 11
    assert dec.pop_due() == [late]
    dec.sync(late)
    late.n_private = 2
    dec.add(late)                                # joined again holding 2 blocks
    assert dec.advance(2) == [] and dec.context_tokens() == 19 + 13
    assert dec.advance(1) == [early, late]       # both end at tick 3; running order
    assert dec.pop_due() == []


def test_stale_entries_of_a_left_member_are_skipped():
    dec = Decoders(16)
    req = _decoder(1, 16, 1, 5)
    dec.add(req)
    dec.sync(req)
    assert dec.count == 0 and dec.pop_due() == [] and dec.advance(10) == []
