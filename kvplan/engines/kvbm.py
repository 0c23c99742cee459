"""NVIDIA Dynamo 1.6.1 with the KV Block Manager (kvbm 1.6.1) behind its pinned vLLM 0.31.0.

The KVBM wheel is compiled Rust: environment names are confirmed in the 1.6.1 binary
(``kvbm/_core.abi3.so``), the logic behind them is cited from the Dynamo source
(``ai-dynamo/dynamo``, paths below; docs/engines.md gives the commits read).

- ai-dynamo 1.6.1's ``vllm`` extra pins ``vllm==0.31.0`` (wheel METADATA); KVBM is wired with
  ``--kv-transfer-config '{"kv_connector":"DynamoConnector","kv_connector_module_path":
  "kvbm.vllm_integration.connector","kv_role":"kv_both"}'`` (``dynamo/vllm/args.py:623-630``);
  ``--connector`` is refused since 1.0 (``dynamo/vllm/args.py:282-283, 645-670``);
- ``DYN_KVBM_CPU_CACHE_GB`` and ``DYN_KVBM_DISK_CACHE_GB`` are decimal GB for the whole
  replica: ``cache_size_in_gb * 1_000_000_000 / bytes_per_block`` with bytes summed over the
  ranks (``lib/llm/src/block_manager/distributed/leader.rs``, ``compute_num_blocks``);
- the disk tier's file lives in ``DYN_KVBM_DISK_CACHE_DIR`` (``dynamo-kvbm-disk-cache-XXXXXX``
  there, /tmp when unset; ``lib/llm/src/block_manager/storage/disk.rs``);
- every completed device block is offloaded to host; host blocks go on to disk only on their
  second offer within a decaying window (``FrequencyFilter::new(2, 600 s, 1,000,000)``: the
  count doubles per offer, loses 1 every 600 s, passes at >= 2;
  ``lib/bindings/kvbm/src/block_manager.rs:57-80``, ``lib/llm/src/block_manager/offload/
  filter.rs``) unless ``DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER`` is true or 1; with no host tier
  blocks go device -> disk directly (both in the binary's log strings);
- the host and disk pools have no eviction knob: a free block is taken first, then the
  registered block returned longest ago (``lib/llm/src/block_manager/pool/managed/
  inactive.rs``, ``acquire_free_block``): LRU.
"""

from __future__ import annotations

import json

from kvplan.engines import vllm
from kvplan.engines.base import (
    Capabilities,
    Check,
    EngineSettings,
    Knob,
    Mode,
    OffloadFilter,
    TierCaps,
    TierChoice,
    ceil_gb,
    policy_checks,
)

VERSION = "1.6.1"
VLLM_VERSION = "0.31.0"
BINARY = "kvbm/_core.abi3.so (kvbm 1.6.1)"
FILTER = Knob("DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER", "name", "unset (filter on)",
              "lib/bindings/kvbm/src/block_manager.rs:57-80")
CONNECTOR = {"kv_connector": "DynamoConnector",
             "kv_connector_module_path": "kvbm.vllm_integration.connector",
             "kv_role": "kv_both"}
HBM = TierCaps("hbm", Knob("--kv-cache-memory-bytes", "bytes", "unset",
                           "vllm/config/cache.py:247 (vLLM 0.31.0)", "per GPU"), (("lru", ""),))

CAPS = Capabilities(
    engine="dynamo-kvbm", label=f"Dynamo {VERSION} KVBM (vLLM {VLLM_VERSION})",
    versions=(("ai-dynamo", VERSION), ("kvbm", VERSION), ("vllm", VLLM_VERSION)),
    tiers=(HBM,
           TierCaps("dram", Knob("DYN_KVBM_CPU_CACHE_GB", "GB", "unset (no host tier)",
                                 "lib/llm/src/block_manager/distributed/leader.rs"),
                    (("lru", ""),)),
           TierCaps("ssd", Knob("DYN_KVBM_DISK_CACHE_GB", "GB", "unset (no disk tier)",
                                "lib/llm/src/block_manager/distributed/leader.rs"),
                    (("lru", ""),),
                    directory=Knob("DYN_KVBM_DISK_CACHE_DIR", "path", "/tmp",
                                   "lib/llm/src/block_manager/storage/disk.rs"))),
    device_pool=HBM.size,  # type: ignore[arg-type]
    block=Knob("--block-size", "tokens", "16 (vLLM 0.31.0)", "vllm/config/cache.py:71 (0.31.0)"),
    block_sizes=vllm.CUDA_BLOCK_SIZES,
    writes=(Mode("write-through", "DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER=true",
                 "every block offloaded to host also goes to disk",
                 "lib/bindings/kvbm/src/block_manager.rs:57-80"),
            Mode("write-through-selective", "default (disk offload filter on)",
                 "host blocks go to disk on their 2nd offer within 600 s (kvplan: on a "
                 "block's 2nd prefix hit, no decay)",
                 "lib/llm/src/block_manager/offload/filter.rs")),
    prefetches=(Mode("none", "", "host and disk hits are onboarded when the request is "
                     "scheduled", "kvbm/vllm_integration/connector_leader.py:119"),),
    inclusive=True,
    offload_filter=OffloadFilter("ssd", 2, 600.0, FILTER),
    scheduler=vllm.SCHEDULER)
"""The scheduler rules are vLLM 0.34.0's (read there, not re-read at 0.31.0)."""


def settings(choice: TierChoice) -> EngineSettings:
    """``python -m dynamo.vllm`` with KVBM, sizes in the environment.

    Example: DRAM 100 GiB, SSD 400 GiB -> DYN_KVBM_CPU_CACHE_GB=108,
    DYN_KVBM_DISK_CACHE_GB=430, DYN_KVBM_DISK_CACHE_DIR=/mnt/kvcache and, because kvplan
    simulated plain write-through, DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER=true.
    """
    block = vllm.engine_block(choice)
    args = vllm.serve_args(("python", "-m", "dynamo.vllm", "--model", choice.model), choice, block)
    env: list[tuple[str, str]] = []
    if choice.dram_bytes:
        env.append(("DYN_KVBM_CPU_CACHE_GB", str(ceil_gb(choice.dram_bytes))))
    if choice.ssd_bytes:
        env += [("DYN_KVBM_DISK_CACHE_GB", str(ceil_gb(choice.ssd_bytes))),
                ("DYN_KVBM_DISK_CACHE_DIR", choice.disk_dir)]
        if choice.dram_bytes and choice.write == "write-through":
            env.append(("DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER", "true"))
    if env:
        args += ("--kv-transfer-config", json.dumps(CONNECTOR, separators=(",", ":")))
    notes = ("Dynamo also needs its frontend (python -m dynamo.frontend) and, with more than "
             "one worker, etcd and NATS: see Dynamo's deployment guide",)
    if any(k == FILTER.name for k, _ in env):
        notes += ("KVBM's default disk filter (a block reaches disk on its 2nd host offer) is "
                  "turned off because kvplan simulated plain write-through; drop "
                  f"{FILTER.name} to save SSD writes",)
    checks = vllm.block_checks(choice, block) + policy_checks(CAPS, choice) + (
        Check("disk filter passes on the 2nd hit",
              choice.write != "write-through-selective" or choice.store_threshold == 2,
              f"store threshold {choice.store_threshold}; KVBM's is fixed at 2"),)
    return EngineSettings("dynamo-kvbm", CAPS.label, tuple(env), args, checks=checks,
                          notes=notes)
