"""Event-mode simulator: hand-computed timings, conservation, tiers, prefetch, determinism."""

from __future__ import annotations

import dataclasses
import gc
import weakref

import numpy as np
import pytest
from event_helpers import head, make_workload

from kvplan.cost.model import attn_pairs
from kvplan.errors import KvplanError
from kvplan.hierarchy import Link, Tier
from kvplan.sim.build import build_cost
from kvplan.sim.config import ReplayConfig
from kvplan.sim.engine import EventSim
from kvplan.sim.replay import run_replay
from kvplan.trace import load_workload

BS = 512
BASE = ReplayConfig()
COST = build_cost(BASE)
BLOCK_BYTES = COST.kv_bytes_per_token * BS


def _row(result, i: int) -> dict:
    return result.requests.row(i, named=True)


def _blocks(first: int, n: int) -> list[int]:
    return list(range(first, first + n))


@pytest.fixture(scope="module")
def mooncake():
    return load_workload()


def test_one_request_alone_ttft_is_prefill_time_and_tpot_sums_decode_steps():
    w = make_workload([(0.0, 1000, 5, _blocks(1, 1))])
    r = _row(run_replay(w, BASE), 0)
    assert r["ttft_s"] == pytest.approx(COST.prefill_time_s(1000), rel=1e-12)
    decode = sum(COST.step_time_s(0, 0, 1, 1001 + j) for j in range(4))
    assert r["finish_s"] - r["first_token_s"] == pytest.approx(decode, rel=1e-9)
    assert r["tpot_s"] == pytest.approx(decode / 4, rel=1e-9)
    assert (r["queue_delay_s"], r["load_stall_s"], r["prefill_tokens"]) == (0.0, 0.0, 1000)


def test_chunked_prefill_sums_the_chunks():
    w = make_workload([(0.0, 20000, 1, _blocks(1, 39))])
    r = _row(run_replay(w, BASE), 0)
    chunks = [(8192, 0), (8192, 8192), (3616, 16384)]
    expected = sum(COST.step_time_s(c, attn_pairs(c, p), 0, 0) for c, p in chunks)
    assert r["ttft_s"] == pytest.approx(expected, rel=1e-12)
    assert r["tpot_s"] is None


def test_two_requests_sharing_a_prefix_hit_in_hbm():
    w = make_workload([(0.0, 2100, 2, _blocks(1, 4)), (50.0, 1600, 2, [1, 2, 99])])
    res = run_replay(w, BASE)
    b = _row(res, 1)
    assert (b["hit_hbm_blocks"], b["prefill_tokens"]) == (2, 1600 - 1024)
    assert b["ttft_s"] == pytest.approx(COST.prefill_time_s(576, 1024), rel=1e-12)
    assert res.run.tier(Tier.HBM).hit_blocks == 2 and res.run.prompt_blocks == 7


def _evicting_trio(tail_tokens: int = 100) -> list[tuple[float, int, int, list[int]]]:
    """A fills 4 blocks; E (8 blocks) evicts them from an 8-block HBM; C reuses A's prefix."""
    return [(0.0, 2100, 1, _blocks(1, 4)), (20.0, 3684, 1, _blocks(100, 7)),
            (60.0, 2048 + tail_tokens, 1, _blocks(1, 4))]


def _h2d_s(nbytes: int) -> float:
    link = COST.profile.link("h2d")
    return link.latency_us * 1e-6 + nbytes / (link.bandwidth_gbps(nbytes) * 1e9)


def test_dram_hit_stall_is_bytes_over_bandwidth_plus_latency():
    cfg = dataclasses.replace(BASE, hbm_kv_gib=0.5, dram_gib=4.0)
    c = _row(run_replay(make_workload(_evicting_trio()), cfg), 2)
    assert (c["hit_hbm_blocks"], c["hit_dram_blocks"], c["hit_ssd_blocks"]) == (0, 4, 0)
    stall = _h2d_s(4 * BLOCK_BYTES)
    assert c["load_stall_s"] == pytest.approx(stall, rel=1e-12)
    assert c["ttft_s"] == pytest.approx(stall + COST.prefill_time_s(100, 2048), rel=1e-12)


@pytest.mark.parametrize("dram_gib", [0.0, 0.25])
def test_ssd_hit_takes_two_hops(dram_gib):
    cfg = dataclasses.replace(BASE, hbm_kv_gib=0.5, dram_gib=dram_gib, ssd_gib=8.0)
    c = _row(run_replay(make_workload(_evicting_trio()), cfg), 2)
    assert c["hit_ssd_blocks"] == 4
    n = 4 * BLOCK_BYTES
    expected = COST.transfer_time_s("ssd_read", n) + COST.transfer_time_s("h2d", n)
    assert c["load_stall_s"] == pytest.approx(expected, rel=1e-12)


def test_lookahead_stages_queued_requests_and_cuts_their_stall():
    """Y waits behind a long decode (max_seqs 1); lookahead loads its DRAM prefix meanwhile."""
    rows = _evicting_trio()[:2] + [(60.0, 1000, 300, _blocks(500, 1)),
                                   (60.001, 2148, 1, _blocks(1, 4))]
    cfg = dataclasses.replace(BASE, hbm_kv_gib=0.5, dram_gib=4.0, max_seqs=1,
                              staging_budget_frac=0.5)
    w = make_workload(rows)
    none = run_replay(w, cfg)
    look = run_replay(w, dataclasses.replace(cfg, prefetch="lookahead"))
    assert _row(none, 3)["load_stall_s"] == pytest.approx(_h2d_s(4 * BLOCK_BYTES), rel=1e-12)
    assert _row(look, 3)["load_stall_s"] == 0.0
    assert _row(look, 3)["hit_dram_blocks"] == 4
    assert look.run.timing.load_stall_total_s < none.run.timing.load_stall_total_s


def test_oracle_prefetch_is_labelled_and_bounds_the_stall():
    cfg = dataclasses.replace(BASE, hbm_kv_gib=0.5, dram_gib=4.0)
    w = make_workload(_evicting_trio())
    res = run_replay(w, dataclasses.replace(cfg, prefetch="oracle"))
    assert "bound" in res.run.bound
    assert res.run.timing.load_stall_total_s == 0.0


def _tiered(w, **kw):
    return run_replay(w, dataclasses.replace(BASE, dram_gib=256.0, ssd_gib=2048.0, **kw))


def test_conservation_on_the_bundled_trace(mooncake):
    w = head(mooncake, 400)
    res = _tiered(w, prefetch="lookahead")
    df = res.requests
    assert df["finished"].all() and res.run.timing.stop_reason == "done"
    clean = df.filter(df["preemptions"] == 0)
    hit = clean["hit_hbm_tokens"] + clean["hit_dram_tokens"] + clean["hit_ssd_tokens"]
    assert ((clean["prefill_tokens"] + hit) == clean["input_tokens"]).all()
    assert (df["ttft_s"] >= df["queue_delay_s"] + df["load_stall_s"] - 1e-9).all()
    assert (df["e2e_s"] >= df["ttft_s"]).all()
    assert res.run.prompt_tokens == int(w.table.column("input_tokens").to_numpy().sum())


def test_lookahead_never_raises_total_stall_on_the_bundled_trace(mooncake):
    w = head(mooncake, 600)
    none, look = _tiered(w), _tiered(w, prefetch="lookahead")
    assert look.run.timing.load_stall_total_s <= none.run.timing.load_stall_total_s


def test_an_absent_tier_changes_nothing(mooncake):
    w = head(mooncake, 200)
    a = run_replay(w, BASE)
    b = run_replay(w, dataclasses.replace(BASE, eviction_dram="fifo", eviction_ssd="lfu",
                                          write="write-back", prefetch="lookahead"))
    assert a.requests.equals(b.requests)


def test_session_ttl_pins_keep_the_next_turn_in_hbm():
    """Turn 0 of session 7; two turns of session 8 fill a 12-block HBM; LRU would evict
    session 7's blocks unless pinned (session 8's next turn takes over its own pins)."""
    rows = [(0.0, 2100, 1, _blocks(1, 4)), (20.0, 3684, 1, _blocks(100, 7)),
            (30.0, 3684, 1, _blocks(200, 7)), (40.0, 2148, 1, _blocks(1, 4))]
    w = make_workload(rows, sessions=[7, 8, 8, 7])
    cfg = dataclasses.replace(BASE, hbm_kv_gib=0.75)
    assert _row(run_replay(w, cfg), 3)["hit_hbm_blocks"] == 0
    pinned = run_replay(w, dataclasses.replace(cfg, session_ttl_s=60.0))
    assert _row(pinned, 3)["hit_hbm_blocks"] == 4
    expired = run_replay(w, dataclasses.replace(cfg, session_ttl_s=5.0))
    assert _row(expired, 3)["hit_hbm_blocks"] == 0


def test_preemption_frees_hbm_and_everyone_finishes():
    rows = [(0.0, 1000, 600, _blocks(1, 1)), (0.0, 1000, 600, _blocks(10, 1)),
            (0.0, 1000, 600, _blocks(20, 1))]
    cfg = dataclasses.replace(BASE, hbm_kv_gib=0.5)
    res = run_replay(make_workload(rows), cfg)
    assert res.requests["finished"].all()
    assert res.run.timing.preemptions > 0
    swap = run_replay(make_workload(rows), dataclasses.replace(cfg, dram_gib=1.0))
    assert swap.requests["finished"].all() and swap.run.link(Link.D2H).bytes > 0


def test_hbm_too_small_fails_before_simulating():
    w = make_workload([(0.0, 5000, 1, _blocks(1, 9))])
    with pytest.raises(KvplanError, match="HBM too small: request 0 needs 10 KV blocks"):
        run_replay(w, dataclasses.replace(BASE, hbm_kv_gib=0.5))


def test_block_size_mismatch_and_unknown_policies_fail_before_simulating():
    with pytest.raises(KvplanError, match="block size mismatch"):
        run_replay(make_workload([(0.0, 5000, 1, _blocks(1, 3))]), BASE)
    w = make_workload([(0.0, 600, 1, [1])])
    with pytest.raises(KvplanError, match="unknown eviction policy 'mru'; valid: .*lru"):
        run_replay(w, dataclasses.replace(BASE, eviction_dram="mru"))
    with pytest.raises(KvplanError, match="unknown prefetch policy 'magic'; valid: lookahead"):
        run_replay(w, dataclasses.replace(BASE, prefetch="magic"))


def test_simulated_time_cap_is_reported_not_hung(mooncake):
    res = run_replay(head(mooncake, 200), dataclasses.replace(BASE, max_sim_s=30.0))
    assert "simulated-time cap" in res.run.timing.stop_reason
    assert res.run.timing.finished < 200
    assert np.isnan(res.requests.filter(~res.requests["finished"])["finish_s"]
                    .fill_null(np.nan).to_numpy()).all()


def test_a_finished_run_is_freed_without_the_cyclic_collector():
    """A run's state (block records, the stream's ids) must go when its last reference does:
    a reference cycle would keep it until the cyclic collector ran, and back-to-back
    verification runs in one worker stacked up (1.8 GiB instead of 0.8 on the agent plan)."""
    w = make_workload([(0.0, 1000, 5, _blocks(1, 1)), (0.1, 2000, 3, _blocks(1, 3))])
    gc.disable()
    try:
        sim = EventSim(w, BASE, COST)
        sim.run()
        sim.result()
        freed = weakref.ref(sim)
        del sim
        assert freed() is None
    finally:
        gc.enable()
