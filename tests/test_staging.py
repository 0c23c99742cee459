"""Predictive staging (#17): layer-wise load overlap, session prefetch timing, headroom."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from event_helpers import make_workload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.cost.model import attn_pairs
from kvplan.engines import lmcache, sglang, vllm
from kvplan.plan.headroom import headroom_note
from kvplan.sim.build import build_cost
from kvplan.sim.config import ReplayConfig
from kvplan.sim.core import moves, rules
from kvplan.sim.engine import EventSim
from kvplan.sim.kvstore import KvStore
from kvplan.sim.overlap import hidden_s, layerwise_stall_s
from kvplan.sim.prefetch.headroom import captured_frac
from kvplan.sim.prefetch.session import next_turns
from kvplan.sim.replay import run_replay
from kvplan.sim.transfers import just_in_time_stall_s
from kvplan.units import GIB
from kvplan.workload import write_workload

BLOCK = 512
BLOCK_GIB = BLOCK * 128 * 1024 / GIB
"""llama-3.1-8b bf16: 128 KiB of KV per token, 64 MiB per 512-token block."""


def test_layerwise_stall_worked_example():
    # 32 layers, copy 6 ms/layer, compute 4 ms/layer: 32 x 6 - 31 x 4 = 68 ms
    assert layerwise_stall_s(0.192, 0.128, 32) == pytest.approx(0.068)
    assert hidden_s(0.192, 0.128, 32) == pytest.approx(0.124)
    # copy faster than compute: only the first layer's copy shows, 2 ms
    assert layerwise_stall_s(0.064, 0.128, 32) == pytest.approx(0.002)
    # no compute to hide behind, or one layer: the whole copy
    assert layerwise_stall_s(0.192, 0.0, 32) == pytest.approx(0.192)
    assert layerwise_stall_s(0.192, 0.128, 1) == pytest.approx(0.192)


def test_engines_declare_layerwise_loading_with_a_source():
    assert lmcache.CAPS.layerwise.engine_value == "use_layerwise: true"
    assert lmcache.CAPS.layerwise.source.startswith("lmcache/v1/config.py:")
    assert sglang.CAPS.layerwise is not None and ":" in sglang.CAPS.layerwise.source
    assert vllm.CAPS.layerwise is None


def _reload_workload():
    """Request 0 computes 4 blocks; request 1 (unrelated) pushes them out of a 6-block HBM
    into DRAM; request 2 reuses them (loads them, computes 1 block)."""
    a = [1, 2, 3, 4]
    return make_workload([(0.0, 4 * BLOCK, 1, a), (1.0, 4 * BLOCK, 1, [9, 10, 11, 12]),
                          (2.0, 5 * BLOCK, 1, a + [5])], block_size=BLOCK)


def test_layerwise_overlap_hides_copy_behind_own_prefill():
    cfg = ReplayConfig(hbm_kv_gib=6 * BLOCK_GIB, dram_gib=1.0, arrivals="open")
    wl = _reload_workload()
    plain = run_replay(wl, cfg).requests
    layered = run_replay(wl, dataclasses.replace(cfg, layerwise_load=True)).requests
    copy = plain["load_stall_s"][2]
    assert plain["hit_dram_blocks"][2] > 0 and copy > 0
    cost = build_cost(cfg)
    own = cost.step_time_s(BLOCK, attn_pairs(BLOCK, 4 * BLOCK), 0, 0) - cost.step_time_s(0, 0, 0, 0)
    layers = cost.spec.num_layers
    expect = copy / layers + (layers - 1) * max(copy / layers - own / layers, 0.0)
    assert expect == pytest.approx(copy - (layers - 1) / layers * min(copy, own))
    assert layered["load_stall_s"][2] == pytest.approx(expect, rel=1e-9)
    saved = (layers - 1) / layers * min(copy, own)
    assert plain["ttft_s"][2] - layered["ttft_s"][2] == pytest.approx(saved, rel=1e-6)
    assert layered["load_stall_s"][0] == plain["load_stall_s"][0] == 0


def _session_workload():
    """Session 0: turn A0 (4 blocks) at 0 s, A1 (A0's blocks + 1) at 3 s. B (single turn,
    4 blocks) at 0.2 s, C (4 blocks) at 1 s needs room in a 10-block HBM: LRU evicts the
    oldest cached blocks, A0's, unless session prefetch pinned them."""
    a = [1, 2, 3, 4]
    rows = [(0.0, 4 * BLOCK, 1, a), (0.2, 4 * BLOCK, 1, [21, 22, 23, 24]),
            (1.0, 4 * BLOCK, 1, [31, 32, 33, 34]), (3.0, 5 * BLOCK, 1, a + [5])]
    return make_workload(rows, block_size=BLOCK, sessions=[0, 1, 2, 0])


SESSION_CFG = ReplayConfig(hbm_kv_gib=10 * BLOCK_GIB, dram_gib=1.0, staging_budget_frac=0.5,
                           arrivals="open")
"""Open loop: the hand-computed timings use the trace's arrival times."""


def test_session_prefetch_keeps_the_context_for_the_next_turn():
    wl = _session_workload()
    none = run_replay(wl, SESSION_CFG).requests
    sess = run_replay(wl, dataclasses.replace(SESSION_CFG, prefetch="session"))
    assert none["hit_dram_blocks"][3] == 2 and none["load_stall_s"][3] > 0
    req = sess.requests
    assert req["hit_hbm_blocks"][3] == 4 and req["hit_dram_blocks"][3] == 0
    assert req["load_stall_s"][3] == 0
    # pinned, not copied: nothing crossed a link for the stage
    assert sess.run.timing.staged_used_bytes == sess.run.timing.staged_unused_bytes == 0


def test_session_stage_is_placed_at_turn_end_and_dropped_at_its_ttl():
    wl = _session_workload()
    cfg = dataclasses.replace(SESSION_CFG, prefetch="session", stage_ttl_s=0.5)
    finish_a0 = run_replay(wl, cfg).requests["finish_s"][0]
    assert 0 < finish_a0 < 0.5
    staged_at = {}
    for cap_s in (finish_a0 + 0.25, finish_a0 + 0.5 + 1e-9):
        sim = EventSim(wl, dataclasses.replace(cfg, max_sim_s=cap_s), build_cost(cfg))
        sim.run()
        staged_at[cap_s] = sorted(sim.store.staged)
    assert list(staged_at.values()) == [[3], []]
    # gap 3 s > TTL 0.5 s: C evicts A0's blocks as without prefetch
    none = run_replay(wl, SESSION_CFG).requests
    late = run_replay(wl, cfg).requests
    assert late["hit_dram_blocks"][3] == none["hit_dram_blocks"][3] == 2


def test_session_stage_gives_way_to_an_admission():
    """A request needing all 10 HBM blocks finds A0's 4 pinned: the stage is dropped, the
    request is admitted at once."""
    a = [1, 2, 3, 4]
    rows = [(0.0, 4 * BLOCK, 1, a), (1.0, 9 * BLOCK, 1, list(range(40, 49))),
            (3.0, 5 * BLOCK, 1, a + [5])]
    wl = make_workload(rows, block_size=BLOCK, sessions=[0, 1, 0])
    res = run_replay(wl, dataclasses.replace(SESSION_CFG, prefetch="session"))
    assert res.run.timing.finished == 3 and res.requests["queue_delay_s"][1] < 0.01


def test_next_turns():
    assert next_turns(np.array([7, 3, 7, 3, 9])).tolist() == [2, 3, -1, -1, -1]


def test_arrival_bound_cannot_start_before_arrival():
    assert just_in_time_stall_s(5.0, 2.0, 9.0) == (0.0, 9.0)
    assert just_in_time_stall_s(5.0, 2.0, 9.0, earliest_s=8.0) == (1.0, 10.0)


def test_captured_share():
    assert captured_frac(174.0, 158.0, 8.0) == pytest.approx(16 / 166)
    assert captured_frac(10.0, 10.0, 10.0) is None
    assert captured_frac(10.0, 12.0, 2.0) == pytest.approx(-0.25)


class _FreeStagingStore(KvStore):
    """Staging is free: its copies land at once (no link time), and it stages only into the
    ``extra`` HBM blocks the run is given on top of the capacity the run without it has."""

    extra = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.staging_cap = self.extra

    def _stage(self, idx, blocks, limit, now):
        self.transfers.start(now, moves.take(self.m))
        super_start, self._start = self._start, lambda now: rules.drain(self.m, self.f)
        try:
            super()._stage(idx, blocks, limit, now)
        finally:
            self._start = super_start


def _session_trace(draw_sizes, gaps):
    """Sessions of growing prompts (each turn reuses the whole previous prompt)."""
    rows, sessions, t, nxt = [], [], 0.0, 100
    for s, (n_turns, first) in enumerate(draw_sizes):
        blocks = list(range(nxt, nxt + first))
        nxt += first + 8
        for k in range(n_turns):
            rows.append((t + 0.3 * s + k * gaps, len(blocks) * BLOCK + 7, 4, list(blocks)))
            sessions.append(s)
            blocks = blocks + [nxt]
            nxt += 1
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])
    return make_workload([rows[i] for i in order], block_size=BLOCK,
                         sessions=[sessions[i] for i in order])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.tuples(st.integers(2, 4), st.integers(1, 4)), min_size=2, max_size=5),
       gap=st.sampled_from([0.5, 1.5, 4.0]), hbm_blocks=st.integers(8, 16),
       policy=st.sampled_from(["session", "lookahead", "session+lookahead"]))
def test_free_staging_never_raises_total_stall(sizes, gap, hbm_blocks, policy):
    wl = _session_trace(sizes, gap)
    cfg = ReplayConfig(hbm_kv_gib=hbm_blocks * BLOCK_GIB, dram_gib=1.0, ssd_gib=4.0,
                       stage_ttl_s=1e9, arrivals="open")
    none = run_replay(wl, cfg).run.timing.load_stall_total_s
    extra = hbm_blocks // 2
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("kvplan.sim.engine.KvStore", _FreeStagingStore)
        mp.setattr(_FreeStagingStore, "extra", extra)
        staged = run_replay(wl, dataclasses.replace(
            cfg, prefetch=policy, hbm_kv_gib=(hbm_blocks + extra) * BLOCK_GIB)).run.timing
    assert staged.finished == wl.num_requests
    assert staged.load_stall_total_s <= none + 1e-9


def test_replay_compare_prefetch_prints_and_writes_headroom(tmp_path):
    trace = tmp_path / "s.parquet"
    write_workload(_session_workload(), trace)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["replay", "--trace", str(trace), "--hbm-kv-gib",
                                 str(10 * BLOCK_GIB), "--dram-gib", "1", "--staging-frac", "0.5",
                                 "--arrivals", "open",
                                 "--compare", "prefetch=session", "-o", str(out)],
                           env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert "prefetch headroom" in r.output and "reference" in r.output and "bound" in r.output
    h = pl.read_parquet(out / "headroom.parquet")
    assert h["variant"].to_list() == ["prefetch=none", "prefetch=session", "prefetch=oracle"]
    share = h.filter(pl.col("prefetch") == "session")["captured_frac"][0]
    stall = dict(zip(h["prefetch"], h["load_stall_s"], strict=True))
    assert share == pytest.approx(captured_frac(stall["none"], stall["session"], stall["oracle"]))
    assert share == pytest.approx(1.0)  # pinning A0's blocks leaves A1 nothing to load


def test_plan_headroom_note_for_a_prefetch_policy():
    cfg = dataclasses.replace(SESSION_CFG, prefetch="session")
    note = headroom_note(cfg, lambda: [_session_workload()])
    assert len(note) == 1 and "session captures 100%" in note[0]
    assert headroom_note(SESSION_CFG, lambda: [_session_workload()]) == []
