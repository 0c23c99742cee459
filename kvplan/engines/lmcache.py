"""vLLM 0.34.0 with LMCache 0.5.6 in process (``LMCacheConnectorV1``): CPU and local-disk tiers.

Facts (file:line in the lmcache 0.5.6 wheel unless named; docs/engines.md has the table):

- the connector is wired with ``LMCACHE_CONFIG_FILE`` (``v1/config.py:1094``) and
  ``--kv-transfer-config '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}'``
  (vllm ``distributed/kv_transfer/kv_connector/factory.py:188-192``). ``--kv-offloading-backend
  lmcache`` means a separate LMCache server process instead (vllm ``config/vllm.py:1097-1103``);
- ``chunk_size`` 256 tokens (``v1/config.py:90``); only full chunks are saved
  (``save_unfull_chunk`` false, ``:385``), prompt only (``save_decode_cache`` false, ``:126``);
- ``max_local_cpu_size`` and ``max_local_disk_size`` are GiB (``* 1024**3`` in
  ``storage_backend/local_cpu_backend.py:933`` and ``local_disk_backend.py:190``), per GPU
  worker; the CPU pool is also the staging buffer of every other backend
  (``storage_backend/storage_manager.py:314-327``), so it is needed even without a CPU tier;
- ``local_disk`` takes a directory, ``file://`` prefix allowed (``v1/config_base.py:50-66``);
- ``cache_policy`` LRU, LFU, FIFO or MRU, case-insensitive, for the CPU and disk backends
  alike (``storage_backend/cache_policy/__init__.py:14-17``, ``local_cpu_backend.py:62``,
  ``local_disk_backend.py:134``);
- every stored chunk goes to every backend (``storage_backend/storage_manager.py:412-430``):
  write-through, inclusive.
"""

from __future__ import annotations

import json

import yaml

from kvplan.engines import vllm
from kvplan.engines.base import (
    Capabilities,
    Check,
    ConfigFile,
    EngineSettings,
    Knob,
    Mode,
    TierCaps,
    TierChoice,
    ceil_gib,
    largest_dividing,
    policy_checks,
)

VERSION = "0.5.6"
CHUNK_TOKENS = 256
CHUNK_SIZES = (256, 128, 64, 32, 16)
"""Chunk sizes kvplan may pick (LMCache's default first), each a multiple of the vLLM block."""
STAGING_GIB = 5
"""CPU staging buffer when the plan has no CPU tier: LMCache's default max_local_cpu_size."""
POLICIES = (("lru", "LRU"), ("lfu", "LFU"), ("fifo", "FIFO"))
CACHE_POLICY = Knob("cache_policy", "name", "LRU", "lmcache/v1/config.py:401-405")

CAPS = Capabilities(
    engine="vllm+lmcache", label=f"vLLM {vllm.VERSION} + LMCache {VERSION}",
    versions=(("vllm", vllm.VERSION), ("lmcache", VERSION)),
    tiers=(vllm.HBM,
           TierCaps("dram", Knob("max_local_cpu_size", "GiB", "5.0", "lmcache/v1/config.py:96",
                                 "per GPU"), POLICIES, CACHE_POLICY),
           TierCaps("ssd", Knob("max_local_disk_size", "GiB", "0.0", "lmcache/v1/config.py:113",
                                "per GPU"), POLICIES, CACHE_POLICY,
                    Knob("local_disk", "path", "unset", "lmcache/v1/config.py:103-107"))),
    device_pool=vllm.DEVICE_POOL,
    block=Knob("chunk_size", "tokens", str(CHUNK_TOKENS), "lmcache/v1/config.py:90"),
    block_sizes=CHUNK_SIZES,
    writes=(Mode("write-through", "", "every saved chunk is put into every backend",
                 "lmcache/v1/storage_backend/storage_manager.py:412-430"),),
    prefetches=(Mode("none", "enable_async_loading: false",
                     "hits are retrieved when the request is scheduled",
                     "lmcache/v1/config.py:411-415"),),
    inclusive=True, chunk_tokens=CHUNK_TOKENS, scheduler=vllm.SCHEDULER,
    layerwise=Mode("layerwise", "use_layerwise: true",
                   "retrieves a hit layer by layer as the forward pass reaches each layer "
                   "(off by default)",
                   "lmcache/v1/config.py:121-125, "
                   "lmcache/integration/vllm/vllm_v1_adapter.py:826-850"))


def chunk_size(choice: TierChoice) -> int:
    """The largest of CHUNK_SIZES dividing the trace block (16 if none).

    Example: trace block 512 -> 256; 16 -> 16.
    """
    return largest_dividing(CHUNK_SIZES, choice.block_size) or CHUNK_SIZES[-1]


def config(choice: TierChoice) -> dict[str, object]:
    """The LMCache YAML keys for ``choice`` (sizes per GPU, whole GiB rounded up).

    Example: DRAM 100 GiB, SSD 400 GiB, tp 1, LRU -> chunk_size 256, local_cpu true,
    max_local_cpu_size 100, local_disk file:///mnt/kvcache, max_local_disk_size 400,
    cache_policy LRU.
    """
    cpu = ceil_gib(-(-choice.dram_bytes // choice.tp))
    out: dict[str, object] = {"chunk_size": chunk_size(choice), "local_cpu": cpu > 0,
                              "max_local_cpu_size": cpu or STAGING_GIB}
    if choice.ssd_bytes:
        out |= {"local_disk": "file://" + choice.disk_dir,
                "max_local_disk_size": ceil_gib(-(-choice.ssd_bytes // choice.tp))}
    out["cache_policy"] = dict(POLICIES).get(choice.eviction_of("dram"), "LRU")
    out |= {"save_decode_cache": False, "enable_async_loading": False}
    return out


def settings(choice: TierChoice) -> EngineSettings:
    """``vllm serve`` with the LMCache connector and its YAML (``lmcache.yaml``)."""
    chunk = chunk_size(choice)
    block = largest_dividing(vllm.CUDA_BLOCK_SIZES, chunk) or vllm.CUDA_BLOCK_SIZES[-1]
    connector = json.dumps({"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"},
                           separators=(",", ":"))
    args = vllm.serve_args(("vllm", "serve", choice.model), choice, block)
    if choice.dram_bytes or choice.ssd_bytes:
        args += ("--kv-transfer-config", connector)
    text = yaml.safe_dump(config(choice), sort_keys=False, default_flow_style=False)
    checks = vllm.block_checks(choice, block) + policy_checks(CAPS, choice) + (
        Check("chunk_size divides the trace block", choice.block_size % chunk == 0,
              f"chunk {chunk} tokens, trace block {choice.block_size}"),)
    notes = ("an HBM-only plan needs no LMCache: the line runs vLLM's prefix cache alone",
             ) if not (choice.dram_bytes or choice.ssd_bytes) else ()
    files = (ConfigFile("lmcache.yaml", f"# LMCache {VERSION} configuration (kvplan)\n" + text,
                        "LMCACHE_CONFIG_FILE"),) if choice.dram_bytes or choice.ssd_bytes else ()
    return EngineSettings("vllm+lmcache", CAPS.label, (), args, files, checks, notes)
