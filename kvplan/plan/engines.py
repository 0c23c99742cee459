"""Ready-to-use engine settings for a chosen tier configuration, with each engine's rules checked.

Units differ per engine and are stated per setting (GiB = 2**30 bytes, GB = 10**9 bytes):

| engine | DRAM tier | SSD tier | rules checked |
| --- | --- | --- | --- |
| vLLM (native offload) | ``--kv-offloading-size`` GiB | none (native is CPU only) | block size in the CUDA set and dividing the trace block; SSD needs the lmcache backend |
| LMCache | ``max_local_cpu_size`` GiB | ``local_disk`` + ``max_local_disk_size`` GiB | chunk_size a multiple of the engine block; disk staged through a CPU buffer > 0 |
| SGLang HiCache | ``--hicache-size`` GB (or ``--hicache-ratio``) | ``--hicache-storage-backend file`` | host pool strictly larger than the device KV pool |
| Dynamo KVBM | ``DYN_KVBM_CPU_CACHE_GB`` | ``DYN_KVBM_DISK_CACHE_GB`` | CPU cache >= GPU KV cache; disk cache >= CPU cache |

Sources: vLLM ``CacheConfig`` (block_size, kv_offloading_size, kv_offloading_backend), LMCache
configuration reference, SGLang "HiCache best practices" and ``HostKVCache`` (host pool must
exceed the device pool), NVIDIA Dynamo "KVBM configuration reference".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kvplan.units import GIB

GB = 10**9
VLLM_CUDA_BLOCK_SIZES = (1, 8, 16, 32)
"""Block sizes vLLM's CUDA attention backends accept (``CacheConfig.block_size``)."""
HICACHE_WRITE = {"write-through": "write_through", "write-through-selective":
                 "write_through_selective", "write-back": "write_back"}
HICACHE_PREFETCH = {"none": "best_effort", "lookahead": "timeout", "oracle": "wait_complete"}


@dataclass(frozen=True)
class TierChoice:
    """What the engines must be told: tier sizes in bytes and the policies."""

    block_size: int
    """Tokens per block the trace was hashed with."""
    hbm_kv_bytes: int
    """Device KV pool."""
    dram_bytes: int
    """Host KV tier (0 = none)."""
    ssd_bytes: int
    """SSD KV tier (0 = none)."""
    write: str = "write-through"
    """kvplan write policy name."""
    prefetch: str = "none"
    """kvplan prefetch policy name."""


@dataclass(frozen=True)
class Check:
    """One engine rule, and whether the chosen sizes satisfy it."""

    rule: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class EngineSettings:
    """Settings for one engine: flags/keys with values, a command line and the rules checked."""

    engine: str
    settings: dict[str, str]
    command: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _gib(nbytes: int) -> int:
    """Whole GiB, rounded up (an engine given less than planned caches less)."""
    return math.ceil(nbytes / GIB)


def _gb(nbytes: int) -> int:
    """Whole GB (10**9), rounded up."""
    return math.ceil(nbytes / GB)


def vllm_settings(t: TierChoice) -> EngineSettings:
    """vLLM V1 with native CPU offloading (``--kv-offloading-backend native``).

    Example: block 512 tokens, 48 GiB DRAM -> --block-size 32 --kv-offloading-size 48.
    """
    block = max(b for b in VLLM_CUDA_BLOCK_SIZES if t.block_size % b == 0)
    s = {"--enable-prefix-caching": "", "--block-size": str(block)}
    if t.dram_bytes:
        s |= {"--kv-offloading-backend": "native", "--kv-offloading-size": str(_gib(t.dram_bytes)),
              "--disable-hybrid-kv-cache-manager": ""}
    checks = (
        Check("block size in the CUDA set and divides the trace block",
              block in VLLM_CUDA_BLOCK_SIZES and t.block_size % block == 0,
              f"{block} divides {t.block_size}"),
        Check("native offloading has no SSD tier", t.ssd_bytes == 0,
              "no SSD tier" if t.ssd_bytes == 0 else
              f"{_gib(t.ssd_bytes)} GiB SSD planned: use --kv-offloading-backend lmcache "
              "with the LMCache settings below"),
    )
    return EngineSettings("vllm", s, _flags("vllm serve MODEL", s), checks)


def lmcache_settings(t: TierChoice) -> EngineSettings:
    """LMCache (YAML config keys) behind vLLM's LMCacheConnectorV1.

    Example: block 512, DRAM 48 GiB, SSD 200 GiB -> chunk_size 256, max_local_cpu_size 48,
    local_disk file:///mnt/kvcache/, max_local_disk_size 200.
    """
    chunk = math.gcd(t.block_size, 256)
    cpu_gib = _gib(t.dram_bytes) if t.dram_bytes else (1 if t.ssd_bytes else 0)
    s = {"chunk_size": str(chunk), "local_cpu": "true" if cpu_gib else "false",
         "max_local_cpu_size": str(cpu_gib)}
    if t.ssd_bytes:
        s |= {"local_disk": "file:///mnt/kvcache/", "max_local_disk_size": str(_gib(t.ssd_bytes))}
    checks = (
        Check("chunk_size is a multiple of the engine block (16) and divides the trace block",
              chunk % 16 == 0 and t.block_size % chunk == 0, f"chunk {chunk}, trace block "
              f"{t.block_size}"),
        Check("local_disk is staged through a CPU buffer (local_cpu, max_local_cpu_size > 0)",
              not t.ssd_bytes or cpu_gib > 0,
              "no disk tier" if not t.ssd_bytes else f"CPU buffer {cpu_gib} GiB"),
    )
    command = "\n".join(f"{k}: {v}" for k, v in s.items())
    return EngineSettings("lmcache", s, command, checks)


def sglang_settings(t: TierChoice) -> EngineSettings:
    """SGLang HiCache flags: host pool in GB, write and storage prefetch policy.

    Example: HBM KV 40 GB, DRAM 100 GB -> --hicache-size 100 (ratio 2.5).
    """
    page = math.gcd(t.block_size, 64)
    s = {"--page-size": str(page), "--enable-hierarchical-cache": "",
         "--hicache-size": str(_gb(t.dram_bytes)),
         "--hicache-write-policy": HICACHE_WRITE.get(t.write, "write_through")}
    if t.ssd_bytes:
        s |= {"--hicache-storage-backend": "file",
              "--hicache-storage-prefetch-policy": HICACHE_PREFETCH.get(t.prefetch, "best_effort")}
    ratio = t.dram_bytes / t.hbm_kv_bytes if t.hbm_kv_bytes else math.inf
    checks = (
        Check("host pool strictly larger than the device KV pool (hicache ratio > 1)",
              ratio > 1.0, f"ratio {ratio:.2f}"
              + ("" if ratio > 1.0 else ": HiCache refuses to start; grow DRAM or use LMCache")),
    )
    command = _flags("python -m sglang.launch_server --model-path MODEL", s)
    if t.ssd_bytes:
        command = "SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR=/mnt/kvcache " + command
    return EngineSettings("sglang-hicache", s, command, checks)


def kvbm_settings(t: TierChoice) -> EngineSettings:
    """NVIDIA Dynamo KV Block Manager environment variables (sizes in GB).

    Example: HBM KV 40 GB, DRAM 100 GB, SSD 400 GB -> CPU 100, DISK 400 (both rules hold).
    """
    cpu, disk = _gb(t.dram_bytes), _gb(t.ssd_bytes)
    s = {"DYN_KVBM_CPU_CACHE_GB": str(cpu)}
    if disk:
        s["DYN_KVBM_DISK_CACHE_GB"] = str(disk)
    gpu = t.hbm_kv_bytes / GB
    checks = (
        Check("CPU cache >= GPU KV cache (else KVBM churns every forward pass)", cpu >= gpu,
              f"CPU {cpu} GB vs GPU KV {gpu:.1f} GB"),
        Check("disk cache >= CPU cache", disk == 0 or disk >= cpu,
              "no disk tier" if disk == 0 else f"disk {disk} GB vs CPU {cpu} GB"),
    )
    command = " ".join(f"{k}={v}" for k, v in s.items()) + " python -m dynamo.vllm --model MODEL " \
        "--connector kvbm"
    return EngineSettings("dynamo-kvbm", s, command, checks)


def _flags(prefix: str, settings: dict[str, str]) -> str:
    return " ".join([prefix] + [f"{k} {v}".strip() for k, v in settings.items()])


def engine_settings(t: TierChoice) -> list[EngineSettings]:
    """Settings for every supported engine, each with its rules checked."""
    return [vllm_settings(t), lmcache_settings(t), sglang_settings(t), kvbm_settings(t)]
