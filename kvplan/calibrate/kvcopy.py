"""The real KV offload pattern: gather/scatter of N non-contiguous blocks between HBM and host.

A paged KV cache keeps each layer's K and V in fixed-size blocks scattered over a pool; an
offload (D2H) gathers N of them into contiguous pinned host memory and a load (H2D) scatters
them back into free slots. Two ways to do it:

- ``per_block``: one ``cudaMemcpyAsync`` per block — simple, but every call pays the link's
  fixed cost, which dominates at small blocks;
- ``batched``: one device gather kernel into a contiguous staging buffer plus one large copy
  (or one copy plus one scatter kernel) — the pattern LMCache / vLLM offload kernels use.

The unit is one layer's K+V of one block, as a per-layer paged cache (vLLM) copies it: for
llama-3.1-8b in bf16, 131,072 B/token over 32 layers = 4,096 B/token/layer, so a 16-token block
is 64 KiB and a 512-token block 2 MiB. A whole block of all layers is ``n_layers`` such units.

Cases: ``gather/per_block``, ``gather/batched``, ``scatter/per_block``, ``scatter/batched``;
``batch`` = N blocks, ``tokens`` = tokens per block, ``size_bytes`` = N x block bytes.
"""

from __future__ import annotations

import numpy as np

from kvplan.calibrate.samples import Point
from kvplan.calibrate.session import Session
from kvplan.calibrate.sweeps import Sweep


def measure_kvcopy(
    sess: Session, sweep: Sweep, block_bytes: dict[int, int], rng: np.random.Generator
) -> None:
    """Gather/scatter ``sweep.kv_batch_bytes`` worth of blocks for each block size.

    ``block_bytes`` maps tokens per block -> bytes of one layer's K+V of such a block
    (``tokens x kv_bytes_per_token_layer``).
    """
    import torch

    for tokens, nbytes in block_bytes.items():
        n_blocks = max(1, sweep.kv_batch_bytes // nbytes)
        need = 3 * n_blocks * nbytes  # pool of 2N slots + N staging
        if nbytes % 8 or not sess.fits_gpu(need, f"kvcopy {tokens}-token blocks"):
            continue
        with sess.oom_guard(f"kvcopy {tokens}-token blocks"):
            _one_block_size(sess, torch, tokens, nbytes, n_blocks, rng)


def _one_block_size(sess: Session, torch, tokens: int, nbytes: int, n: int, rng) -> None:
    words = nbytes // 8
    pool = torch.zeros((2 * n, words), dtype=torch.int64, device="cuda")
    staging = torch.empty((n, words), dtype=torch.int64, device="cuda")
    host = torch.zeros((n, words), dtype=torch.int64, pin_memory=True)
    slots = rng.permutation(2 * n)[:n]
    idx = torch.as_tensor(slots, device="cuda")
    slot_list = slots.tolist()

    def gather_per_block() -> None:
        for j, s in enumerate(slot_list):
            host[j].copy_(pool[s], non_blocking=True)

    def gather_batched() -> None:
        torch.index_select(pool, 0, idx, out=staging)
        host.copy_(staging, non_blocking=True)

    def scatter_per_block() -> None:
        for j, s in enumerate(slot_list):
            pool[s].copy_(host[j], non_blocking=True)

    def scatter_batched() -> None:
        staging.copy_(host, non_blocking=True)
        pool.index_copy_(0, idx, staging)

    for case, fn in (
        ("gather/per_block", gather_per_block),
        ("gather/batched", gather_batched),
        ("scatter/per_block", scatter_per_block),
        ("scatter/batched", scatter_batched),
    ):
        sess.measure(Point("kvcopy", case, size_bytes=n * nbytes, batch=n, tokens=tokens), fn)
