"""Event queue, processor-shared links and the just-in-time bound, by hand."""

from __future__ import annotations

import pytest

from kvplan.sim.events import PRIO_ARRIVAL, PRIO_STEP, PRIO_TRANSFER, Arrival, EventQueue, StepDone
from kvplan.sim.transfers import BusyTimeline, SharedLink, Transfer, just_in_time_stall_s
from kvplan.units import GIB

_seq = iter(range(1, 1000))


def _link(latency_s: float = 10e-6, bw_bytes_s: float = 25 * GIB) -> SharedLink:
    return SharedLink(0, latency_s, lambda n: latency_s + n / bw_bytes_s, BusyTimeline(1))


def _transfer(link: SharedLink, nbytes: int) -> Transfer:
    return Transfer(next(_seq), 0, nbytes, link.work_s(nbytes), None)


def test_queue_orders_by_time_then_priority_then_push_order():
    q = EventQueue()
    q.push(1.0, PRIO_ARRIVAL, Arrival(1))
    q.push(1.0, PRIO_STEP, StepDone(1))
    q.push(1.0, PRIO_ARRIVAL, Arrival(2))
    q.push(0.5, PRIO_ARRIVAL, Arrival(0))
    q.push(1.0, PRIO_TRANSFER, StepDone(7))
    assert [q.pop()[1] for _ in range(5)] == [Arrival(0), StepDone(7), StepDone(1), Arrival(1),
                                              Arrival(2)]
    assert q.peek_time() == float("inf")


def test_alone_a_transfer_takes_latency_plus_bytes_over_bandwidth():
    link = _link()
    tr = _transfer(link, GIB)
    link.start(0.0, tr)
    t = link.next_time()
    assert t == pytest.approx(10e-6)
    assert link.collect(t) == []
    t_done = link.next_time()
    assert t_done == pytest.approx(10e-6 + 0.04, abs=1e-12)
    assert link.collect(t_done) == [tr]
    assert link.busy_s == pytest.approx(0.04)


def test_two_transfers_share_the_link():
    """Docstring example: two 1 GiB at 25 GiB/s, both end at 10 us + 0.08 s."""
    link = _link()
    a, b = _transfer(link, GIB), _transfer(link, GIB)
    link.start(0.0, a)
    link.start(0.0, b)
    link.collect(10e-6)
    assert link.next_time() == pytest.approx(10e-6 + 0.08, abs=1e-12)
    assert link.collect(10e-6 + 0.08) == [a, b]


def test_late_arrival_slows_the_first_transfer_by_its_share():
    """A: 1 GiB at t=0 (no latency); B: 0.5 GiB at t=0.02. A alone 0.02 s (0.5 GiB done),
    then both at half rate: B's 0.5 GiB and A's 0.5 GiB both end at 0.02 + 0.04 = 0.06 s."""
    link = _link(latency_s=0.0)
    a, b = _transfer(link, GIB), _transfer(link, GIB // 2)
    link.start(0.0, a)
    link.collect(0.0)
    link.start(0.02, b)
    link.collect(0.02)
    assert link.next_time() == pytest.approx(0.06)
    assert set(link.collect(0.06)) == {a, b}


def test_busy_timeline_splits_at_whole_seconds():
    tl = BusyTimeline(1)
    tl.add(0, 0.5, 2.25)
    assert tl.busy[0] == {0: 0.5, 1: 1.0, 2: 0.25}


@pytest.mark.parametrize(("free_at", "work", "need", "stall", "end"), [
    (5.0, 2.0, 6.0, 1.0, 7.0),   # docstring: link busy until 5, runs 5 -> 7
    (7.0, 2.0, 9.0, 0.0, 9.0),   # runs 7 -> 9, just in time
    (0.0, 1.0, 3.0, 0.0, 3.0),
])
def test_just_in_time_stall(free_at, work, need, stall, end):
    assert just_in_time_stall_s(free_at, work, need) == pytest.approx((stall, end))
