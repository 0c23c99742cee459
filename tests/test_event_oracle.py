"""Oracle prefetch: a request whose loads end just in time runs at once, so its admission
must hold HBM blocks for its first chunk too (it used to overdraw the pool and crash)."""

from __future__ import annotations

from event_helpers import head

from kvplan.sim.build import build_cost
from kvplan.sim.config import ReplayConfig
from kvplan.sim.core import layout as L
from kvplan.sim.engine import EventSim
from kvplan.trace import load_workload


def test_just_in_time_admissions_keep_hbm_accounting_whole():
    cfg = ReplayConfig(hbm_kv_gib=24.0, dram_gib=64.0, prefetch="oracle")
    sim = EventSim(head(load_workload(), 400), cfg, build_cost(cfg))
    sim.run()
    assert sim.collector.finished == 400 and sim.stop_reason == "done"
    m = sim.store.m
    assert m[L.PRIVATE] == 0
    assert L.tier_word(m, 0, L.PEAK) <= L.tier_word(m, 0, L.CAP)
