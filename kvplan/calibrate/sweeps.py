"""The points each mode measures: ``quick`` (under 2 minutes on an H100/H200) and ``full``.

Sizes are powers of two so the fitted size -> bandwidth curves have evenly spaced knots on a
log axis. Every GPU size is still checked against ``--max-gpu-mem-frac`` before it is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kvplan.calibrate.timing import Repeats

Mode = Literal["quick", "full"]
KiB, MiB, GiB = 2**10, 2**20, 2**30


def pow2_sizes(lo: int, hi: int, step: int = 1) -> tuple[int, ...]:
    """Powers of two from ``lo`` to ``hi`` inclusive, every ``step``-th exponent.

    >>> pow2_sizes(64 * 1024, 1024 * 1024, 2)
    (65536, 262144, 1048576)
    """
    out, n = [], lo
    while n <= hi:
        out.append(n)
        n <<= step
    return tuple(out)


@dataclass(frozen=True)
class Sweep:
    """Sizes and shapes of one calibration mode."""

    repeats: Repeats
    link_sizes: tuple[int, ...]
    """Host<->device copy sizes in bytes (64 KiB .. 1 GiB)."""
    hbm_sizes: tuple[int, ...]
    """Device-to-device copy sizes in bytes."""
    kv_block_tokens: tuple[int, ...]
    """Tokens per KV block whose byte size the kvcopy family gathers/scatters."""
    kv_batch_bytes: int
    """Bytes moved by one gather/scatter call (number of blocks = this / block bytes)."""
    overlap_copy_bytes: int
    """Host->device copy running beside the compute in the overlap family."""
    matmul_sizes: tuple[int, ...]
    """Square GEMM sizes M = N = K."""
    prefill_tokens: tuple[int, ...]
    """Prompt lengths of the one-layer prefill timing."""
    decode_batches: tuple[int, ...]
    decode_contexts: tuple[int, ...]
    gemm_tokens: tuple[int, ...]
    """Tokens m of the per-operation GEMM sweep (the ``gemm`` curve's x)."""
    gemm_shapes: tuple[tuple[int, int], ...]
    """Weights (n, k) of the GEMM sweep, spanning the weight sizes of 1B-400B models."""
    attn_heads: tuple[int, ...]
    """Query heads per GPU of the prefill-attention sweep (head_dim 128, 4 query heads per KV
    head); its sequence lengths are ``prefill_tokens``."""
    host_sizes: tuple[int, ...]
    """DRAM memcpy sizes in bytes."""
    cpu_matmul_sizes: tuple[int, ...]
    """Square GEMM sizes on the CPU (only measured without a GPU)."""
    ssd_threads: int
    """Concurrent requests for SSD bandwidth (queue depth); latency is measured at depth 1."""
    ssd_random_reads: int
    """Random reads per block size for the SSD latency figure."""


SWEEPS: dict[Mode, Sweep] = {
    "quick": Sweep(
        repeats=Repeats(warmup=2, repeats=5),
        link_sizes=pow2_sizes(64 * KiB, 256 * MiB, 2),
        hbm_sizes=pow2_sizes(1 * MiB, 1 * GiB, 2),
        kv_block_tokens=(16, 64, 256, 512),
        kv_batch_bytes=64 * MiB,
        overlap_copy_bytes=256 * MiB,
        matmul_sizes=(1024, 4096, 8192),
        prefill_tokens=(128, 512, 2048, 8192),
        decode_batches=(1, 16, 64),
        decode_contexts=(1024, 8192),
        gemm_tokens=(1, 16, 64, 256, 1024, 4096, 16384),
        gemm_shapes=((4096, 4096), (16384, 4096), (4096, 16384), (28672, 8192)),
        attn_heads=(8, 32),
        host_sizes=pow2_sizes(1 * MiB, 64 * MiB, 2),
        cpu_matmul_sizes=(128, 256),
        ssd_threads=8,
        ssd_random_reads=32,
    ),
    "full": Sweep(
        repeats=Repeats(warmup=3, repeats=10),
        link_sizes=pow2_sizes(64 * KiB, 1 * GiB),
        hbm_sizes=pow2_sizes(1 * MiB, 4 * GiB),
        kv_block_tokens=(16, 64, 256, 512),
        kv_batch_bytes=256 * MiB,
        overlap_copy_bytes=1 * GiB,
        matmul_sizes=(512, 1024, 2048, 4096, 8192, 16384),
        prefill_tokens=(64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
        decode_batches=(1, 4, 16, 64, 128, 256),
        decode_contexts=(512, 2048, 8192, 32768),
        gemm_tokens=(1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
        gemm_shapes=((1024, 1024), (4096, 1024), (4096, 4096), (16384, 4096), (4096, 16384),
                     (28672, 8192), (8192, 28672), (131072, 8192)),
        attn_heads=(4, 8, 16, 32, 64),
        host_sizes=pow2_sizes(1 * MiB, 1 * GiB),
        cpu_matmul_sizes=(128, 256, 512, 1024),
        ssd_threads=16,
        ssd_random_reads=256,
    ),
}
