"""Golden figures on the bundled Mooncake trace: cache mode for every eviction policy at three
tier sizes, and one event-mode run with DRAM + SSD tiers and lookahead prefetch.

Any change to a simulated figure shows up here. When the change is intended, regenerate with
``KVPLAN_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py`` and say why in the commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kvplan.sim.config import ReplayConfig
from kvplan.sim.replay import run_replay
from kvplan.trace import load_workload
from kvplan.workload import Workload

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("KVPLAN_REGEN_GOLDEN") == "1"
POLICIES = ["lru", "fifo", "lfu", "s3fifo", "arc", "belady"]
SIZES = [(8.0, 32.0, 128.0), (32.0, 128.0, 512.0), (64.0, 512.0, 2048.0)]
CACHE_KEYS = ["hit_hbm_blocks", "hit_dram_blocks", "hit_ssd_blocks", "recomputed_tokens",
              "h2d_bytes", "d2h_bytes", "ssd_read_bytes", "ssd_bytes_written"]
EVENT_KEYS = ["finished", "hit_hbm_blocks", "hit_dram_blocks", "hit_ssd_blocks",
              "recomputed_tokens", "preemptions", "h2d_bytes", "ssd_read_bytes",
              "ssd_bytes_written", "sim_duration_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms",
              "load_stall_total_s"]


@pytest.fixture(scope="module")
def workload() -> Workload:
    wl = load_workload()
    return Workload(wl.table.slice(0, 800), wl.meta)


def _check(name: str, figures: dict) -> None:
    path = GOLDEN / f"{name}.json"
    if REGEN:
        path.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    assert figures == pytest.approx(expected, rel=1e-9), name


@pytest.mark.parametrize("policy", POLICIES)
def test_cache_mode_golden(workload, policy):
    figures = {}
    for hbm, dram, ssd in SIZES:
        cfg = ReplayConfig(mode="cache", hbm_kv_gib=hbm, dram_gib=dram, ssd_gib=ssd,
                           eviction_hbm=policy, eviction_dram=policy, eviction_ssd=policy)
        run = run_replay(workload, cfg).run.as_row()
        figures.update({f"{hbm:g}/{dram:g}/{ssd:g} {k}": run[k] for k in CACHE_KEYS})
    _check(f"cache_{policy}", figures)


def test_event_mode_golden(workload):
    cfg = ReplayConfig(dram_gib=256.0, ssd_gib=2048.0, prefetch="lookahead")
    run = run_replay(workload, cfg).run.as_row()
    _check("event_tiers_lookahead", {k: run[k] for k in EVENT_KEYS})
