"""``run_replay``: check a configuration against a workload, then run the mode it names.

Every impossible configuration fails here, before any simulation, with one line that says
what is wrong and what would fix it.
"""

from __future__ import annotations

import numpy as np

from kvplan.cost.model import CostModel
from kvplan.errors import KvplanError
from kvplan.sim.build import build_cost, tier_capacity_blocks
from kvplan.sim.config import ReplayConfig
from kvplan.sim.policies import eviction_policy
from kvplan.sim.prefetch import prefetch_class
from kvplan.sim.results import ReplayResult
from kvplan.units import GIB
from kvplan.workload import Workload
from kvplan.workload.validate import block_hash_lists


def run_replay(workload: Workload, config: ReplayConfig, progress: bool = False) -> ReplayResult:
    """Validate, then replay ``workload`` in ``config.mode`` (``event`` or ``cache``)."""
    validate(workload, config)
    if config.mode == "cache":
        from kvplan.sim.cache import run_cache

        return run_cache(workload, config)
    from kvplan.sim.engine import run_event

    return run_event(workload, config, progress=progress)


def validate(workload: Workload, config: ReplayConfig) -> CostModel:
    """Raise a one-line KvplanError for a configuration that cannot run; returns the cost model."""
    for name in config.evictions:
        eviction_policy(name)
    prefetch_class(config.prefetch)
    _check_knobs(config)
    _check_blocks(workload)
    cost = build_cost(config)
    hbm, dram, ssd = tier_capacity_blocks(config, cost, workload.block_size)
    _check_links(config, cost, dram > 0, ssd > 0)
    if config.mode == "event":
        _check_hbm_fits(workload, hbm, cost)
    return cost


def _check_knobs(config: ReplayConfig) -> None:
    writes = ("write-through", "write-through-selective", "write-back")
    if config.write not in writes:
        raise KvplanError(f"unknown write policy '{config.write}'; valid: {', '.join(writes)}")
    positive = {"max_batched_tokens": config.max_batched_tokens, "max_seqs": config.max_seqs,
                "lookahead_iters": config.lookahead_iters,
                "store_threshold": config.store_threshold}
    for field, value in positive.items():
        if value < 1:
            raise KvplanError(f"{field} must be >= 1, got {value}")
    for field, value in {"dram_gib": config.dram_gib, "ssd_gib": config.ssd_gib,
                         "session_ttl_s": config.session_ttl_s}.items():
        if value < 0:
            raise KvplanError(f"{field} must be >= 0, got {value}")
    if config.arrivals not in ("closed", "open"):
        raise KvplanError(f"arrivals: expected closed or open, got '{config.arrivals}'")
    if not 0 <= config.staging_budget_frac <= 1:
        raise KvplanError(f"staging_budget_frac must be in [0, 1], got "
                          f"{config.staging_budget_frac}")


def _check_blocks(workload: Workload) -> None:
    """Each request must carry exactly input_tokens // block_size block hashes."""
    t = workload.table
    bs = workload.block_size
    counts = np.diff(np.asarray(block_hash_lists(t).offsets))
    expected = t.column("input_tokens").to_numpy() // bs
    bad = np.flatnonzero(counts != expected)
    if len(bad):
        i = int(bad[0])
        raise KvplanError(
            f"block size mismatch: workload says block_size {bs}, but request "
            f"{t.column('request_id')[i].as_py()} has {counts[i]} block hashes for "
            f"{t.column('input_tokens')[i].as_py()} input tokens (expected {expected[i]}); "
            "re-read the trace with --block-size")


def _check_links(config: ReplayConfig, cost: CostModel, dram: bool, ssd: bool) -> None:
    needed = (["h2d", "d2h"] if dram or ssd else []) + (["ssd_read", "ssd_write"] if ssd else [])
    for name in needed:
        spec = cost.profile.link(name)
        if not (spec.peak_gbps > 0 or spec.measured is not None):
            tier = "SSD" if name.startswith("ssd") else "DRAM/SSD"
            raise KvplanError(f"profile '{cost.profile.name}': link {name} has zero bandwidth, "
                              f"but the {tier} tier needs it; set its size to 0 or fix the profile")


def _check_hbm_fits(workload: Workload, hbm_blocks: int, cost: CostModel) -> None:
    """The largest request (prompt + output) must fit in HBM's KV blocks on its own."""
    t = workload.table
    bs = workload.block_size
    tokens = t.column("input_tokens").to_numpy().astype(np.int64) + np.maximum(
        t.column("output_tokens").to_numpy(), 1)
    if not len(tokens):
        return
    i = int(np.argmax(tokens))
    need = -(-int(tokens[i]) // bs)
    if need > hbm_blocks:
        gib = need * bs * cost.kv_bytes_per_token / GIB
        raise KvplanError(
            f"HBM too small: request {t.column('request_id')[i].as_py()} needs {need} KV blocks "
            f"({gib:.1f} GiB) but HBM holds {hbm_blocks} blocks of {bs} tokens; raise "
            "--hbm-kv-gib, use a bigger GPU profile or drop the request")
