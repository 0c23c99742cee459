"""SGLang HiCache's storage prefetch policies (kvplan.sim.storageprefetch): what is not landed
when the wait ends is recomputed; wait_complete is kvplan's behaviour before the policies."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.engines import TierChoice, engine, storage_wait
from kvplan.errors import KvplanError
from kvplan.hierarchy import Tier
from kvplan.sim.build import build_cost
from kvplan.sim.config import ReplayConfig
from kvplan.sim.engine import EventSim
from kvplan.sim.storageprefetch import BEST_EFFORT, WAIT_COMPLETE, StorageWait, kept_hits
from kvplan.units import GIB
from tests.event_helpers import make_workload

BS = 16
"""Tokens per block (llama-3.1-8b bf16: 2 MiB a block)."""
ROWS = [(0.0, 96, 2, list(range(1, 7))), (1.0, 160, 2, list(range(11, 21))),
        (2.0, 112, 2, [*range(1, 7), 99])]
"""Request 0 writes blocks 1-6 through to DRAM and SSD; request 1 (10 blocks) pushes them
out of HBM (12 blocks) but block 1 and out of DRAM (4 blocks); request 2 finds block 1 in HBM
and blocks 2-6 on SSD only, then computes block 99's 16 tokens."""


def _run(policy: str = "wait_complete", wait: StorageWait | None = None, **kw):
    cfg = ReplayConfig(engine="sglang-hicache")
    cost = build_cost(cfg)
    blk = BS * cost.kv_bytes_per_token
    cfg = ReplayConfig(engine="sglang-hicache", hbm_kv_gib=12 * blk / GIB,
                       dram_gib=4 * blk / GIB, ssd_gib=1.0, **kw,
                       **({"storage_prefetch": policy} if policy else {}))
    sim = EventSim(make_workload(ROWS, block_size=BS), cfg, cost)
    if wait is not None:
        sim.store.storage_wait = wait
    sim.run()
    return sim.result().requests, cost


def _last(frame) -> dict:
    return frame.row(2, named=True)


def test_sglang_declares_its_policies_with_its_timeout_formula():
    assert storage_wait("sglang-hicache", "timeout") == StorageWait(1.0, 0.25)
    assert storage_wait("sglang-hicache", "timeout").budget_s(2048) == 1.5
    assert storage_wait("sglang-hicache", "best_effort") is BEST_EFFORT
    assert storage_wait("sglang-hicache", "wait_complete") is WAIT_COMPLETE
    assert storage_wait("vllm", "wait_complete") is storage_wait("none", "wait_complete")
    with pytest.raises(KvplanError, match="--storage-prefetch"):
        storage_wait("vllm", "best_effort")
    with pytest.raises(KvplanError, match="expected one of wait_complete, best_effort, timeout"):
        storage_wait("sglang-hicache", "nope")


def test_kept_hits_cuts_at_the_first_block_not_landed():
    """The module's example: [HBM, SSD x4], 64 SSD tokens, wait 1 + 0.25 * 64 / 1024 s =
    1.015625 s, the link moves k blocks in 0.1 + 0.4 k s: 2 land, 3 blocks kept."""
    levels = np.array([Tier.HBM, Tier.SSD, Tier.SSD, Tier.SSD, Tier.SSD])
    read = lambda nbytes: 0.1 + 0.4 * nbytes / (1 << 20)  # noqa: E731
    assert kept_hits(levels, 16, 1 << 20, read, StorageWait(1.0, 0.25)) == 3
    assert kept_hits(levels, 16, 1 << 20, read, BEST_EFFORT) == 1
    assert kept_hits(levels, 16, 1 << 20, read, StorageWait(10.0)) == 5
    assert kept_hits(levels, 16, 1 << 20, read, WAIT_COMPLETE) == 5
    no_ssd = np.array([Tier.HBM, Tier.DRAM])
    assert kept_hits(no_ssd, 16, 1 << 20, read, BEST_EFFORT) == 2


def test_wait_complete_is_kvplans_behaviour_before():
    base, _ = _run(policy="")
    assert _run("wait_complete")[0].equals(base)
    r = _last(base)
    assert (r["hit_hbm_blocks"], r["hit_ssd_blocks"], r["prefill_tokens"]) == (1, 5, 16)


def test_best_effort_recomputes_every_ssd_hit():
    """No wait: the 5 SSD blocks (80 tokens) are recomputed with block 99's 16."""
    r = _last(_run("best_effort")[0])
    assert (r["hit_hbm_blocks"], r["hit_ssd_blocks"], r["prefill_tokens"]) == (1, 0, 96)
    assert r["load_stall_s"] == 0.0


def test_timeout_keeps_what_lands_within_the_wait():
    """SGLang's formula (1 s + 0.25 s * 80 / 1024) far exceeds 5 blocks' read: all kept. A
    wait of exactly two blocks' read keeps 2 of 5: 3 blocks (48 tokens) recomputed."""
    complete = _run("wait_complete")[0]
    assert _run("timeout")[0].equals(complete)
    cost = build_cost(ReplayConfig())
    two = cost.transfer_time_s("ssd_read", 2 * BS * cost.kv_bytes_per_token)
    r = _last(_run("timeout", wait=StorageWait(float(two)))[0])
    assert (r["hit_hbm_blocks"], r["hit_ssd_blocks"], r["prefill_tokens"]) == (1, 2, 16 + 48)


def test_replay_flag_is_refused_without_sglang():
    runner = CliRunner()
    for extra in ([], ["--engine", "vllm"]):
        r = runner.invoke(app, ["replay", "--storage-prefetch", "best_effort", *extra])
        assert r.exit_code == 2
        assert "--storage-prefetch is valid only with --engine sglang-hicache" in r.output


def test_launch_line_carries_the_policy():
    base = {"model": "m", "block_size": 512, "kv_bytes_per_token": 131_072,
            "hbm_kv_bytes": 40 * GIB, "dram_bytes": 64 * GIB, "ssd_bytes": 200 * GIB}
    sglang = engine("sglang-hicache")
    assert "--hicache-storage-prefetch-policy wait_complete" in sglang.settings(
        TierChoice(**base)).command()
    for policy in ("best_effort", "timeout"):
        line = sglang.settings(TierChoice(**base, storage_prefetch=policy)).command()
        assert f"--hicache-storage-prefetch-policy {policy}" in line
