"""vLLM 0.34.0 with its native KV offloading (OffloadingConnector): HBM, CPU, file-system tiers.

Facts (file:line in the vllm 0.34.0 wheel; docs/engines.md has the whole table):

- the device pool is pinned by ``--kv-cache-memory-bytes`` (bytes per GPU,
  ``config/cache.py:386``); the GPU prefix cache evicts from a free queue (LRU), no knob;
- ``--kv-offloading-size`` (GiB for the whole replica, ``config/cache.py:407``) turns on the
  native CPU tier: ``config/vllm.py:1088-1096`` sets ``OffloadingConnector`` with
  ``cpu_bytes_to_use = size * 2**30``;
- the CPU tier evicts ``lru`` or ``arc`` (``v1/kv_offload/cpu/policies/factory.py:86-91``,
  ``eviction_policy`` in ``kv_connector_extra_config``, ``cpu/spec.py:141``) and may skip a
  block until it is offered ``store_threshold`` times (``cpu/spec.py:155-159``, default 0 = off);
- ``TieringOffloadingSpec`` (``v1/kv_offload/factory.py:64-67``) adds secondary tiers; type
  ``fs`` writes one file per block under ``root_dir`` (``tiering/factory.py:151-155``,
  ``tiering/fs/manager.py:114``) with no size cap, and every chunk stored to the CPU tier is
  cascaded to every secondary tier (``tiering/manager.py:10-11``): inclusive write-through;
  ``store_threshold`` is refused there (``tiering/spec.py:400-403``);
- only prompt blocks are offloaded by default (``offload_prompt_only``, ``base.py:790``);
- CUDA attention backends take blocks in multiples of 16 (FlashAttention and Triton
  ``MultipleOf(16)``, ``v1/attention/backends/flash_attn.py:367``, ``triton_attn.py:340``;
  FlashInfer 16, 32 or 64 on Hopper, ``flashinfer.py:605``); the default is 64
  (``config/cache.py:185``);
- scheduler rules (kvplan.sim.schedrules): ``allocate_slots`` caches a request's full blocks
  up to computed + scheduled tokens when the step is scheduled
  (``v1/core/kv_cache_manager.py:639-646``), and a waiting request is admitted only if its
  whole sequence fits (``scheduler_reserve_full_isl``, default true, ``config/scheduler.py:202``,
  ``v1/core/kv_cache_manager.py:552-569``, passed at ``v1/core/sched/scheduler.py:1511``).
"""

from __future__ import annotations

import json

from kvplan.engines.base import (
    GIB,
    Capabilities,
    Check,
    EngineSettings,
    Knob,
    Mode,
    TierCaps,
    TierChoice,
    ceil_gib,
    largest_dividing,
    policy_checks,
)
from kvplan.sim.schedrules import SchedulerRules

VERSION = "0.34.0"
CUDA_BLOCK_SIZES = (64, 32, 16)
"""Block sizes every CUDA attention backend of vLLM 0.34.0 accepts, largest first."""

DEVICE_POOL = Knob("--kv-cache-memory-bytes", "bytes", "unset (gpu_memory_utilization 0.92)",
                   "vllm/config/cache.py:386", "per GPU")
BLOCK = Knob("--block-size", "tokens", "64", "vllm/config/cache.py:185")
HBM = TierCaps("hbm", DEVICE_POOL, (("lru", ""),))
CPU_SIZE = Knob("--kv-offloading-size", "GiB", "unset (no CPU tier)", "vllm/config/cache.py:407")
CPU_EVICTION = Knob("kv_connector_extra_config.eviction_policy", "name", "lru",
                    "vllm/v1/kv_offload/cpu/spec.py:141")
SCHEDULER = SchedulerRules(cache_at_schedule=True, full_admission=True)
"""vLLM v1's rules at 0.34.0 (module docstring); bench/vllm_parity.py diffs them."""
FS_DIR = Knob("kv_connector_extra_config.secondary_tiers[].root_dir", "path", "unset",
              "vllm/v1/kv_offload/tiering/fs/manager.py:114")

CAPS = Capabilities(
    engine="vllm", label=f"vLLM {VERSION} native offloading",
    versions=(("vllm", VERSION),),
    tiers=(HBM,
           TierCaps("dram", CPU_SIZE, (("lru", "lru"), ("arc", "arc")), CPU_EVICTION),
           TierCaps("ssd", None, (), directory=FS_DIR)),
    device_pool=DEVICE_POOL, block=BLOCK, block_sizes=CUDA_BLOCK_SIZES,
    writes=(
        Mode("write-through", "store every computed prompt block",
             "each step's computed prompt chunks go to the CPU tier, cascaded to every "
             "secondary tier", "vllm/distributed/kv_transfer/kv_connector/v1/offloading/"
             "scheduler.py:1975-2010"),
        Mode("write-through-selective", "store_threshold",
             "a chunk is stored on its store_threshold-th offer (CPU tier only)",
             "vllm/v1/kv_offload/cpu/manager.py:290-299"),
    ),
    prefetches=(Mode("none", "", "a request's CPU / disk hits load when it is scheduled",
                     "vllm/v1/core/sched/scheduler.py:1176-1190, 1576-1600"),),
    inclusive=True, scheduler=SCHEDULER)


def engine_block(choice: TierChoice) -> int:
    """The vLLM block: the largest CUDA block size dividing the trace block (16 if none)."""
    return largest_dividing(CUDA_BLOCK_SIZES, choice.block_size) or CUDA_BLOCK_SIZES[-1]


def serve_args(program: tuple[str, ...], choice: TierChoice, block: int) -> tuple[str, ...]:
    """``vllm serve``-style arguments every vLLM-based engine gets: device pool per GPU,
    block size, prefix caching and the scheduler budget the simulation assumed."""
    args = program + ("--block-size", str(block), "--enable-prefix-caching",
                      "--kv-cache-memory-bytes", str(choice.hbm_kv_bytes // choice.tp),
                      "--max-num-batched-tokens", str(choice.max_batched_tokens),
                      "--max-num-seqs", str(choice.max_seqs))
    return args + (("--tensor-parallel-size", str(choice.tp)) if choice.tp > 1 else ())


def block_checks(choice: TierChoice, block: int) -> tuple[Check, ...]:
    return (Check("engine block is a multiple of 16 and divides the trace block",
                  choice.block_size % block == 0,
                  f"block {block} tokens, trace block {choice.block_size}"),)


def settings(choice: TierChoice) -> EngineSettings:
    """``vllm serve`` with native offloading.

    Example: trace block 512, HBM 40 GiB, DRAM 100 GiB, LRU, no SSD -> ``--block-size 64
    --kv-cache-memory-bytes 42949672960 --kv-offloading-backend native --kv-offloading-size
    100``. An SSD tier, ARC or a reuse threshold needs the full ``--kv-transfer-config``
    (``TieringOffloadingSpec`` with an ``fs`` tier in ``--disk-dir``; sizes in bytes there).
    """
    block = engine_block(choice)
    args = serve_args(("vllm", "serve", choice.model), choice, block)
    notes = []
    if choice.dram_bytes or choice.ssd_bytes:
        args += _offload_args(choice)
    if choice.ssd_bytes:
        notes.append(f"the fs tier has no size cap in vLLM {VERSION}: give {choice.disk_dir} "
                     f"its own {ceil_gib(choice.ssd_bytes)} GiB file system, or it grows "
                     "without bound")
    checks = block_checks(choice, block) + policy_checks(CAPS, choice) + (
        Check("an SSD tier sits below a CPU tier", not choice.ssd_bytes or choice.dram_bytes > 0,
              "no SSD tier" if not choice.ssd_bytes else f"CPU tier {ceil_gib(choice.dram_bytes)} "
              "GiB" if choice.dram_bytes else "the fs tier is fed by the CPU tier, which needs "
              "cpu_bytes_to_use > 0 (v1/kv_offload/cpu/spec.py:99-103): plan a DRAM tier"),
        Check("selective offload only without an SSD tier",
              choice.write != "write-through-selective" or not choice.ssd_bytes,
              "store_threshold is refused by TieringOffloadingSpec (tiering/spec.py:400)"
              if choice.write == "write-through-selective" and choice.ssd_bytes else "ok"))
    return EngineSettings("vllm", CAPS.label, (), args, checks=checks, notes=tuple(notes))


def _offload_args(choice: TierChoice) -> tuple[str, ...]:
    eviction = CAPS.eviction_value("dram", choice.eviction_of("dram")) or "lru"
    selective = choice.write == "write-through-selective"
    if not choice.ssd_bytes and eviction == "lru" and not selective:
        return ("--kv-offloading-backend", "native",
                "--kv-offloading-size", str(ceil_gib(choice.dram_bytes)))
    extra: dict[str, object] = {"cpu_bytes_to_use": ceil_gib(choice.dram_bytes) * GIB,
                                "eviction_policy": eviction}
    if choice.ssd_bytes:
        extra |= {"spec_name": "TieringOffloadingSpec",
                  "secondary_tiers": [{"type": "fs", "root_dir": choice.disk_dir}]}
    elif selective:
        extra["store_threshold"] = choice.store_threshold
    config = {"kv_connector": "OffloadingConnector", "kv_role": "kv_both",
              "kv_connector_extra_config": extra}
    return ("--kv-transfer-config", json.dumps(config, separators=(",", ":")))
