"""Cache mode end to end: hand-computed stories, metamorphic laws, run_cache on the bundled trace."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.errors import KvplanError
from kvplan.hierarchy import Link, Tier
from kvplan.sim.blocks import BlockStream
from kvplan.sim.cache import replay_blocks, run_cache
from kvplan.sim.config import ReplayConfig
from kvplan.sim.core.spec import CoreSpec, TierRules
from kvplan.sim.policies import eviction_names
from kvplan.sim.request import Shapes
from kvplan.trace import load_workload

STORY = BlockStream.from_hash_lists([[1, 2, 3], [1, 2, 4], [3]], 16)
H2D, D2H, SSD_READ, SSD_WRITE = Link.H2D, Link.D2H, Link.SSD_READ, Link.SSD_WRITE


def test_story_write_through_inclusive():
    # r0 computes 1,2,3; all three are stored in DRAM (3 x d2h); released tail first.
    # r1 hits 1,2 in HBM; room for 4 evicts 3 (the oldest); 4 is stored (d2h).
    # r2 finds 3 in DRAM: room for it evicts 4; one h2d.
    c = replay_blocks(STORY, CoreSpec.of((3, 4, 0)))
    assert c.hit_blocks.tolist() == [[0, 0, 0], [2, 0, 0], [0, 1, 0]]
    assert c.link_blocks[H2D] == 1 and c.link_blocks[D2H] == 4
    assert c.link_blocks.sum() == 5 and c.peak_blocks.tolist() == [3, 4, 0]


def test_story_write_back():
    # Blocks reach DRAM only when evicted from HBM: 3 at r1, 4 at r2 (2 x d2h).
    c = replay_blocks(STORY, CoreSpec.of((3, 4, 0), write="write-back"))
    assert c.hit_blocks.tolist() == [[0, 0, 0], [2, 0, 0], [0, 1, 0]]
    assert c.link_blocks[H2D] == 1 and c.link_blocks[D2H] == 2
    assert c.peak_blocks.tolist() == [3, 2, 0]


def test_story_ssd_hit_takes_two_hops_and_exclusive_moves_up():
    stream = BlockStream.from_hash_lists([[1], [2], [3], [1]], 16)
    inc = replay_blocks(stream, CoreSpec.of((1, 1, 4)))
    assert inc.hit_blocks[3].tolist() == [0, 0, 1]
    assert inc.link_blocks.tolist() == [1, 3, 1, 3]          # h2d, d2h, ssd_read, ssd_write
    # exclusive: evicted blocks move down (3 x d2h, 2 x ssd_write); the SSD hit leaves SSD
    exc = replay_blocks(stream, CoreSpec.of((1, 1, 4), inclusive=False))
    assert exc.hit_blocks[3].tolist() == [0, 0, 1]
    assert exc.link_blocks.tolist() == [1, 3, 1, 2]
    assert exc.peak_blocks.tolist() == [1, 1, 1]


def test_oversize_request_caches_its_first_blocks():
    # HBM 2: r0's third block does not fit, so it is computed and cached nowhere; r1's
    # hits fill HBM, so its 4 is not cached either; r2 misses 3 and stores it (3 x d2h).
    c = replay_blocks(STORY, CoreSpec.of((2, 4, 0)))
    assert c.hit_blocks.tolist() == [[0, 0, 0], [2, 0, 0], [0, 0, 0]]
    assert c.link_blocks[D2H] == 3


def test_selective_write_stores_on_the_nth_hit_only():
    stream = BlockStream.from_hash_lists([[1], [1], [1], [2]], 16)
    once = replay_blocks(stream, CoreSpec.of((2, 4, 0), write="write-through-selective",
                                             store_threshold=2))
    assert once.link_blocks[D2H] == 1                        # block 1 on its 2nd hit
    never = replay_blocks(stream, CoreSpec.of((2, 4, 0), write="write-through-selective",
                                              store_threshold=3))
    assert never.link_blocks[D2H] == 0


def test_hits_count_in_every_tier_toward_a_store_threshold():
    # DRAM takes every block (store/0), SSD only blocks hit twice (store/2, a frequency
    # filter before disk). Block 1's two hits are both in DRAM (r2, r4): the second one
    # qualifies it for SSD, so it is copied DRAM -> SSD then.
    stream = BlockStream.from_hash_lists([[1], [2], [1], [3], [1]], 16)
    rules = TierRules(True, ("store", "store"), (0, 2))
    c = replay_blocks(stream, CoreSpec((1, 4, 4), ("lru",) * 3, rules))
    assert c.hit_blocks[:, 1].tolist() == [0, 0, 1, 0, 1]
    assert c.link_blocks[SSD_WRITE] == 1 and c.link_blocks[D2H] == 3


def test_shapes_hold_private_blocks_and_limit_the_lookup():
    # prompts of exactly 2 blocks (32 tokens): the lookup reuses at most 31 tokens (1 block);
    # each request also holds 1 decode block (2 output tokens) while it runs
    stream = BlockStream.from_hash_lists([[1, 2], [1, 2]], 16)
    shapes = Shapes.of(np.array([32, 32]), np.array([2, 2]), 16)
    assert shapes.limit_blocks.tolist() == [1, 1] and shapes.decode_blocks.tolist() == [1, 1]
    c = replay_blocks(stream, CoreSpec.of((3, 0, 0)), shapes)
    assert c.hit_blocks.tolist() == [[0, 0, 0], [1, 0, 0]]
    assert c.peak_blocks[0] == 3


def random_prompts(seed: int, n: int) -> BlockStream:
    rng = np.random.default_rng(seed)
    prompts: list[list[int]] = []
    for _ in range(n):
        base = prompts[rng.integers(len(prompts))] if prompts and rng.random() < 0.7 else []
        head = base[: rng.integers(0, len(base) + 1)]
        prompts.append(head + rng.integers(1, 10**9, rng.integers(0, 4)).tolist())
    return BlockStream.from_hash_lists(prompts, 16)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30))
def test_lru_hit_ratio_never_drops_as_capacity_grows(seed, cap):
    stream = random_prompts(seed, 80)
    hits = [int(replay_blocks(stream, CoreSpec.of((c, 0, 0))).hit_blocks.sum())
            for c in (cap, cap + 1, cap + 5, cap + 40)]
    assert hits == sorted(hits)


@pytest.mark.parametrize("policy", ["lru", "fifo", "s3fifo", "belady"])
def test_absent_tier_changes_nothing(policy):
    stream = random_prompts(5, 300)
    base = replay_blocks(stream, CoreSpec.of((12, 30, 0), (policy, policy, "lru")))
    for other in ("fifo", "belady"):
        c = replay_blocks(stream, CoreSpec.of((12, 30, 0), (policy, policy, other)))
        assert np.array_equal(c.hit_blocks, base.hit_blocks)
        assert c.link_blocks.tolist() == base.link_blocks.tolist()
    assert base.link_blocks[[SSD_READ, SSD_WRITE]].tolist() == [0, 0]
    assert base.hit_blocks[:, 2].sum() == 0
    hbm_only = replay_blocks(stream, CoreSpec.of((12, 0, 0), (policy, "lfu", "arc")))
    assert hbm_only.link_blocks.sum() == 0 and hbm_only.hit_blocks[:, 1:].sum() == 0


def test_belady_beats_every_online_policy_on_the_bundled_trace():
    w = load_workload()
    s = BlockStream.from_workload(w)
    r = 1200
    part = BlockStream(s.ids[: s.offsets[r]], s.offsets[: r + 1], s.num_blocks, s.block_size)
    def hbm_hits(name: str) -> int:
        return int(replay_blocks(part, CoreSpec.of((300, 0, 0), (name, "lru", "lru")))
                   .hit_blocks.sum())
    best = hbm_hits("belady")
    online = {n: hbm_hits(n) for n in eviction_names() if n != "belady"}
    assert all(best >= h for h in online.values()), (best, online)


def test_run_cache_on_bundled_trace_accounts_every_token():
    w = load_workload()
    res = run_cache(w, ReplayConfig(mode="cache", hbm_kv_gib=8, dram_gib=32, ssd_gib=256))
    req = res.requests
    assert req.height == w.num_requests
    hit = req["hit_hbm_blocks"] + req["hit_dram_blocks"] + req["hit_ssd_blocks"]
    assert ((hit * w.block_size + req["recomputed_tokens"]) == req["input_tokens"]).all()
    assert (hit <= req["prompt_blocks"]).all()
    run = res.run
    assert run.mode == "cache" and run.bound == "" and run.tier(Tier.HBM).capacity_blocks == 128
    assert run.ssd_bytes_written == run.link(Link.SSD_WRITE).bytes > 0
    assert run.timing is None and run.link(Link.H2D).util is None
    total = sum(run.tier(t).hit_ratio_blocks for t in Tier)
    assert 0 < total <= 1
    row = run.as_row()
    assert row["hbm_capacity_blocks"] == 128 and "finished" not in row
    oracle = run_cache(w, ReplayConfig(mode="cache", hbm_kv_gib=8, eviction_hbm="belady"))
    assert "offline oracle" in oracle.run.bound


def test_run_cache_unknown_policy_lists_valid_names():
    with pytest.raises(KvplanError, match="valid: arc, belady, fifo, lfu, lru, s3fifo"):
        run_cache(load_workload(), ReplayConfig(mode="cache", eviction_dram="mru"))
