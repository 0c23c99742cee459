"""Event mode vs cache mode: one set of tier rules, two drivers (docs/simulation.md).

With links that take no time and one request in flight at a time (arrivals far apart, every
prefill one step), event mode runs each request through the core exactly as cache mode does,
so both must give identical hits per tier for every request and identical blocks over every
link, for every eviction policy, write policy and inclusive / exclusive tiers: on random
prefix-sharing workloads and on the bundled traces.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.hierarchy import TIER_LABELS, Link
from kvplan.sim import engine
from kvplan.sim.build import build_cost
from kvplan.sim.config import ReplayConfig
from kvplan.sim.replay import run_replay
from kvplan.sim.transfers import SharedLink
from kvplan.trace import load_workload
from kvplan.units import GIB
from kvplan.workload import WORKLOAD_SCHEMA, Workload, WorkloadMeta

BS = 16
GAP_S = 1000.0
"""Arrival spacing: each request finishes long before the next arrives (checked)."""
POLICIES = ["lru", "fifo", "lfu", "s3fifo", "arc", "belady"]
WRITES = ["write-through", "write-through-selective", "write-back"]


@pytest.fixture(autouse=True)
def instant_links(monkeypatch):
    """Links with no latency and unlimited bandwidth: every transfer lands when it starts."""
    def links(cost, timeline):
        return [SharedLink(i, 0.0, lambda n: 0.0, timeline) for i in range(4)]

    monkeypatch.setattr(engine, "build_links", links)


def spaced(workload: Workload, gap_s: float = GAP_S) -> Workload:
    """The workload with request r arriving at r x gap_s (one request in flight at a time)."""
    t = workload.table
    arrivals = pa.array(np.arange(t.num_rows, dtype=np.float64) * gap_s)
    return Workload(t.set_column(t.schema.get_field_index("arrival_s"), "arrival_s", arrivals),
                    workload.meta)


def synthetic(prompts: list[list[int]], tails: list[int], outputs: list[int]) -> Workload:
    n = len(prompts)
    table = pa.table({
        "request_id": list(range(n)), "session_id": list(range(n)), "turn": [0] * n,
        "arrival_s": [r * GAP_S for r in range(n)],
        "input_tokens": [max(len(p) * BS + tail, 1) for p, tail in zip(prompts, tails,
                                                                     strict=True)],
        "output_tokens": outputs, "block_hashes": prompts, "tool_wait_s": [None] * n,
    }, schema=WORKLOAD_SCHEMA)
    return Workload(table, WorkloadMeta("synth", "test", BS, "none"))


def config_for(workload: Workload, caps_blocks: tuple[int, int, int], **kw) -> ReplayConfig:
    """Capacities in blocks (exactly representable GiB) and a budget that fits any prompt;
    open loop, so requests arrive at the (spaced) trace times, one in flight at a time."""
    block_bytes = build_cost(ReplayConfig()).kv_bytes_per_token * workload.block_size
    gib = [c * block_bytes / GIB for c in caps_blocks]
    budget = int(np.max(workload.table.column("input_tokens").to_numpy(), initial=1)) + 1
    return ReplayConfig(hbm_kv_gib=gib[0], dram_gib=gib[1], ssd_gib=gib[2],
                        max_batched_tokens=max(budget, 8192), max_sim_s=1e12, arrivals="open",
                        **kw)


def assert_modes_agree(workload: Workload, config: ReplayConfig) -> None:
    event = run_replay(workload, config)
    cache = run_replay(workload, dataclasses.replace(config, mode="cache"))
    req = event.requests
    assert req["finished"].all()
    assert (req["finish_s"].to_numpy()[:-1] < req["arrival_s"].to_numpy()[1:]).all()
    for tier in TIER_LABELS:
        col = f"hit_{tier}_blocks"
        assert event.requests[col].to_list() == cache.requests[col].to_list(), col
    for link in Link:
        assert event.run.link(link).bytes == cache.run.link(link).bytes, link.label


def prompts_strategy():
    """Requests that share prefixes: each extends a random earlier prompt or starts anew."""
    return st.lists(st.tuples(st.integers(0, 30), st.floats(0, 1), st.integers(0, 5),
                              st.integers(0, BS - 1), st.integers(1, 3 * BS)),
                    min_size=1, max_size=25)


def build_prompts(rows) -> tuple[list[list[int]], list[int], list[int]]:
    prompts: list[list[int]] = []
    next_hash = 1
    for base, cut, grow, _tail, _out in rows:
        head: list[int] = []
        if prompts and base % 3:
            src = prompts[base % len(prompts)]
            head = src[: int(cut * (len(src) + 1))]
        tail = list(range(next_hash, next_hash + grow))
        next_hash += grow
        prompts.append(head + tail)
    return prompts, [r[3] for r in rows], [r[4] for r in rows]


@settings(max_examples=120, deadline=None)
@given(prompts_strategy(), st.integers(0, 6), st.integers(0, 12), st.integers(0, 20),
       st.sampled_from(POLICIES), st.sampled_from(POLICIES), st.sampled_from(WRITES),
       st.booleans(), st.integers(1, 3))
def test_modes_agree_on_random_workloads(rows, spare, dram, ssd, hbm_policy, lower_policy,
                                          write, inclusive, threshold):
    prompts, tails, outputs = build_prompts(rows)
    w = synthetic(prompts, tails, outputs)
    largest = max(-(-(len(p) * BS + t + o) // BS) for p, t, o in zip(prompts, tails, outputs,
                                                                        strict=True))
    cfg = config_for(w, (largest + spare, dram, ssd), eviction_hbm=hbm_policy,
                     eviction_dram=lower_policy, eviction_ssd=lower_policy, write=write,
                     inclusive=inclusive, store_threshold=threshold)
    assert_modes_agree(w, cfg)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("write", "inclusive"), [("write-through", True),
                                                  ("write-through-selective", True),
                                                  ("write-back", True),
                                                  ("write-through", False)])
def test_modes_agree_on_the_bundled_mooncake_trace(policy, write, inclusive):
    wl = load_workload()
    w = spaced(Workload(wl.table.slice(0, 120), wl.meta))
    cfg = config_for(w, (380, 60, 200), eviction_hbm=policy, eviction_dram=policy,
                     eviction_ssd=policy, write=write, inclusive=inclusive)
    assert_modes_agree(w, cfg)


def test_modes_agree_on_the_bundled_agentic_trace():
    from kvplan.bundled import bundled_dir

    w = spaced(load_workload(bundled_dir("traces") / "dynamo_agentic_mooncake_sample.jsonl"))
    assert_modes_agree(w, config_for(w, (40, 6, 12), eviction_hbm="s3fifo",
                                     eviction_dram="arc", eviction_ssd="lfu"))
