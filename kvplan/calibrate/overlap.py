"""Copy/compute overlap: a host->device copy on a side stream while the GPU computes.

Why it matters for KV tiering: loads of prefix blocks from DRAM are meant to hide behind the
compute of other requests. They hide only partly: the copy engine is independent, but the
copy's writes compete for HBM bandwidth with a bandwidth-bound decode attention, and both
compete for the same PCIe link with offloads. Two figures per compute kind:

- hidden share of the copy = (t_copy + t_compute - t_both) / t_copy, clipped to [0, 1]
  (1 = the copy was free, 0 = it serialised);
- compute slowdown = t_compute measured during the copy / t_compute alone.

Compute kinds: ``matmul`` (a large bf16 GEMM, compute-bound) and ``attention`` (decode SDPA
over a long KV context, bandwidth-bound), each repeated until it runs about as long as the copy.

Cases: ``overlap/<kind>/copy_alone``, ``/compute_alone``, ``/both``, ``/compute_during``.
"""

from __future__ import annotations

import math

import numpy as np

from kvplan.calibrate.compute import matmul_flops
from kvplan.calibrate.samples import Point
from kvplan.calibrate.session import Session
from kvplan.calibrate.sweeps import Sweep
from kvplan.model.spec import ModelSpec


def hidden_share(copy_s: float, compute_s: float, both_s: float) -> float:
    """Share of the copy hidden behind compute.

    >>> hidden_share(copy_s=4.0, compute_s=5.0, both_s=6.0)   # 3 of 4 copy seconds hidden
    0.75
    """
    return float(np.clip((copy_s + compute_s - both_s) / copy_s, 0.0, 1.0))


def measure_overlap(sess: Session, sweep: Sweep, spec: ModelSpec) -> None:
    """Time copy alone, compute alone, and both at once, for a GEMM and a decode attention."""
    import torch

    n = sweep.overlap_copy_bytes
    if not sess.fits_gpu(n + 3 * 2**30, "overlap"):
        return
    src = torch.zeros(n, dtype=torch.uint8, pin_memory=True)
    dst = torch.empty(n, dtype=torch.uint8, device="cuda")
    side = torch.cuda.Stream()

    def copy() -> None:
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            dst.copy_(src, non_blocking=True)
        torch.cuda.current_stream().wait_stream(side)

    copy_t = sess.measure(Point("overlap", "overlap/copy_alone", size_bytes=n), copy).median_s
    for kind, (op, flops) in _compute_ops(torch, spec).items():
        _one_kind(sess, torch, kind, op, flops, copy, copy_t, side, dst, src)


def _compute_ops(torch, spec: ModelSpec) -> dict:
    m = 8192
    a = torch.randn(m, m, device="cuda", dtype=torch.bfloat16)
    heads, kvh = spec.num_heads, max(1, spec.num_kv_heads)
    d = spec.head_dim
    batch, ctx = 32, 8192
    q = torch.randn(batch, kvh, heads // kvh, d, device="cuda", dtype=torch.bfloat16)
    kv = torch.randn(batch, kvh, ctx, d, device="cuda", dtype=torch.bfloat16)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    return {
        "matmul": (lambda: a @ a, matmul_flops(m, m, m)),
        "attention": (lambda: sdpa(q, kv, kv), 4.0 * batch * heads * ctx * d),
    }


def _one_kind(sess, torch, kind, op, flops, copy, copy_t, side, dst, src) -> None:
    single = sess.measure(Point("overlap", f"overlap/{kind}/single", flops=flops), op).median_s
    reps = max(1, math.ceil(copy_t / single))

    def compute() -> None:
        for _ in range(reps):
            op()

    work = flops * reps
    sess.measure(Point("overlap", f"overlap/{kind}/compute_alone", flops=work), compute)
    events: list[tuple] = []

    def both() -> None:
        cur = torch.cuda.current_stream()
        side.wait_stream(cur)
        with torch.cuda.stream(side):
            dst.copy_(src, non_blocking=True)
        pair = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        pair[0].record()
        compute()
        pair[1].record()
        cur.wait_stream(side)
        events.append(pair)

    sess.measure(Point("overlap", f"overlap/{kind}/both", size_bytes=dst.numel(), flops=work), both)
    torch.cuda.synchronize()
    during = [a.elapsed_time(b) / 1e3 for a, b in events[-sess.repeats.repeats :]]
    sess.log.add(Point("overlap", f"overlap/{kind}/compute_during", flops=work), np.array(during))
