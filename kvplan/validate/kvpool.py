"""The KV pool of a vLLM run that did not record it, derived as vLLM 0.19.0 sizes it.

vLLM profiles one forward pass at start-up and gives KV what is left of its share of the GPU
(``vllm/v1/worker/gpu_worker.py:332-421``, ``vllm/utils/mem_utils.py:197-281``)::

    requested  = ceil(total GPU memory x gpu_memory_utilization)     worker/utils.py:408-410
    KV bytes   = requested - weights - torch activation peak - non-torch increase
                 (- CUDA graph estimate, only with VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1;
                  off by default: gpu_worker.py:395-399, envs.py:1654)
    KV blocks  = KV bytes // (block_size x KV bytes per token per GPU)  core/kv_cache_utils.py:851

``--kv-cache-memory-bytes`` replaces the whole sum (gpu_worker.py:344-362). The activation
peak and the non-torch increase are *measured* by vLLM's profile run; kvplan estimates the
activation peak with the cost model's reserve (one forward pass of max_num_batched_tokens
tokens plus fp32 logits of max_num_seqs sequences) and cannot see the non-torch part, so the
derived pool is an upper estimate. Worked example, the bundled run with its recorded pool
removed: requested = ceil(25,250,627,584 x 0.9) = 22,725,564,826 B; weights 16,060,522,496 B;
activation estimate 315,883,520 B; KV = 6,349,158,810 B = 3,027 blocks of 16 tokens x 128 KiB
(vLLM measured 2,588: +17 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kvplan.cost.layout import Layout
from kvplan.cost.model import GIB, GPU_MEMORY_UTILIZATION, activation_reserve, weights_per_gpu
from kvplan.cost.parts import kv_share_per_gpu
from kvplan.hardware.profile import HardwareProfile
from kvplan.model.spec import ModelSpec

VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
"""vLLM 0.19.0 ``vllm/config/cache.py:41`` (CacheConfig.gpu_memory_utilization)."""


@dataclass(frozen=True)
class PoolTerm:
    """One line of the derivation: a signed byte count and where it comes from."""

    name: str
    bytes: int
    source: str


@dataclass(frozen=True)
class DerivedPool:
    tokens: int
    """KV tokens the pool holds (whole blocks)."""
    terms: tuple[PoolTerm, ...]


def derive_vllm_pool(spec: ModelSpec, profile: HardwareProfile, *, kv_bytes_per_token: int,
                     block_size: int, layout: Layout, max_num_batched_tokens: int,
                     max_num_seqs: int, total_bytes: int | None, utilization: float | None,
                     kv_cache_memory_bytes: int | None) -> DerivedPool:
    """vLLM's KV pool (tokens, over the replica) and the terms that gave it, per GPU; the
    weights and the share of a token's KV each GPU holds are the cost model's (tp slices,
    whole experts under ep, KV heads replicated beyond tp = kv_heads)."""
    tp = layout.tp or 1
    per_token = kv_bytes_per_token * kv_share_per_gpu(spec, tp)
    if kv_cache_memory_bytes is not None:
        terms = (PoolTerm("kv_cache_memory_bytes", kv_cache_memory_bytes,
                          "set by the run (vLLM gpu_worker.py:344-362)"),)
        return DerivedPool(_tokens(kv_cache_memory_bytes, per_token, block_size), terms)
    total = total_bytes if total_bytes is not None else int(profile.gpu.hbm_gib * GIB)
    util = utilization if utilization is not None else VLLM_DEFAULT_GPU_MEMORY_UTILIZATION
    requested = math.ceil(total * util)
    weights = weights_per_gpu(spec, layout)
    activation = (activation_reserve(spec, profile, tp, max_num_batched_tokens, max_num_seqs)
                  - math.ceil((1 - GPU_MEMORY_UTILIZATION) * profile.gpu.hbm_gib * GIB))
    kv = requested - weights - activation
    terms = (
        PoolTerm("requested", requested, f"ceil({total:,} B x gpu_memory_utilization {util:g})"
                 " (vLLM worker/utils.py:408-410)"),
        PoolTerm("weights", -weights, "model weights per GPU (vLLM gpu_worker.py:368)"),
        PoolTerm("activation peak", -activation, "estimated: forward of max_num_batched_tokens "
                 "+ fp32 logits of max_num_seqs (vLLM measures it: gpu_worker.py:372-386)"),
        PoolTerm("non-torch increase", 0, "not derivable without the GPU: 0 assumed "
                 "(vLLM measures it: mem_utils.py:271-274)"),
        PoolTerm("CUDA graph estimate", 0, "not subtracted by default (vLLM "
                 "gpu_worker.py:395-399)"),
    )
    return DerivedPool(_tokens(max(kv, 0), per_token, block_size), terms)


def _tokens(kv_bytes: int, per_token: float, block_size: int) -> int:
    """Whole blocks of ``block_size`` tokens in ``kv_bytes`` (vLLM kv_cache_utils.py:851)."""
    return int(kv_bytes // (per_token * block_size)) * block_size
