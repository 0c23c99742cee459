"""Seconds of one operation on one GPU, from a hardware profile (docs/cost-model.md).

Every operation has a datasheet form (peaks x efficiencies from ``[gpu]`` and ``[ops]``); a
calibrated or imported profile replaces the form with its measured curve where it has one:

| operation | datasheet form | measured curve |
| --- | --- | --- |
| weight GEMM (m x k) @ (k x n) | launch + max(2mnk / (P e_c), bytes / (B e_w)) | ``gemm``: SOL / util(m, n k) |
| prefill attention | flops / (P e_a s / (s + s_half)) | ``attn_prefill``: flops / TFLOP/s(s, heads) |
| decode attention, per layer | launch + kv_bytes / (B e_d) | ``attn_decode``: kv_bytes / GB/s(kv_bytes) |
| elementwise kernels | kernels x launch + bytes / (B e_el) | ``hbm``: bytes / GB/s(bytes) + launches |
| all-reduce over g GPUs | latency + 2 (g-1)/g x bytes / (L e_c) | ``allreduce``: bytes / GB/s(bytes, g) |
| all-to-all over g GPUs | latency + (g-1)/g x bytes / (L e_c) | (form only) |

P = dense peak FLOP/s (fp8 peak for fp8 weights where the GPU has it), B = peak HBM bytes/s,
L = the GPU-to-GPU link (NVLink per direction, else PCIe), s = a prefill chunk's sequence
length, SOL = max(2mnk / P, (mk + nk + mn) x 2 B / B). All functions take numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvplan.hardware.profile import Curve, Grid, HardwareProfile

ACT_BYTES = 2
"""Bytes of one activation element (bf16)."""


@dataclass(frozen=True)
class OpTimes:
    """Per-GPU operation times of one profile; ``fp8`` selects the fp8 GEMM peak."""

    profile: HardwareProfile
    fp8: bool = False

    @property
    def peak_flops(self) -> float:
        """Dense FLOP/s of one GPU for the weights' dtype."""
        gpu = self.profile.gpu
        use_fp8 = self.fp8 and gpu.fp8_dense_tflops > 0
        return (gpu.fp8_dense_tflops if use_fp8 else gpu.bf16_dense_tflops) * 1e12

    @property
    def hbm_bytes_per_s(self) -> float:
        return self.profile.gpu.hbm_bw_gbps * 1e9

    def gemm_s(self, m, n: float, k: float, weight_bytes: float = 2.0) -> np.ndarray:
        """One GEMM of ``m`` tokens (array) against an (n x k) weight of ``weight_bytes``
        bytes per element.

        Datasheet, llama-3.1-8b gate/up (n 28,672, k 4,096) at m = 1 on an H100 (e_w 0.849,
        launch 3.87 us): 3.87 us + ((4,096 + 28,672) x 2 + 28,672 x 4,096 x 2) B / 2,844 GB/s
        = 86.5 us.
        """
        m = np.asarray(m, dtype=np.float64)
        flops = 2.0 * m * n * k
        nbytes = (m * k + m * n) * ACT_BYTES + n * k * weight_bytes
        grid = self.profile.curves.get("gemm")
        if isinstance(grid, Grid):
            sol = np.maximum(flops / self.peak_flops, nbytes / self.hbm_bytes_per_s)
            return sol / grid(np.maximum(m, grid.x[0]), n * k)
        gpu, ops = self.profile.gpu, self.profile.ops
        compute = flops / (self.peak_flops * gpu.compute_efficiency_frac)
        stream = nbytes / (self.hbm_bytes_per_s * gpu.hbm_efficiency_frac)
        return ops.gemm_launch_us * 1e-6 + np.maximum(compute, stream)

    def attn_prefill_tflops(self, seq_tokens, heads: float) -> np.ndarray:
        """Achieved TFLOP/s of prefill attention at sequence length ``seq_tokens`` (array)
        with ``heads`` query heads per GPU (measured grid) or the datasheet saturation form
        P x e_a x s / (s + s_half): H100, e_a 0.658, s_half 919, s 2,048 -> 449.2."""
        s = np.asarray(seq_tokens, dtype=np.float64)
        grid = self.profile.curves.get("attn_prefill")
        if isinstance(grid, Grid):
            return np.asarray(grid(s, heads))
        ops = self.profile.ops
        peak = self.profile.gpu.bf16_dense_tflops
        return peak * ops.attn_prefill_frac * s / (s + ops.attn_prefill_half_tokens)

    def attn_decode_s(self, kv_bytes) -> np.ndarray:
        """One layer's decode attention reading ``kv_bytes`` of KV on one GPU (array).

        Datasheet, H100 (e_d 0.870, launch 12.7 us), 64 x 4,096 tokens x 4 KiB = 1 GiB:
        12.7 us + 1,073,741,824 B / 2,914.5 GB/s = 381.1 us. A measured curve is held at its
        first point below it (a kernel's floor).
        """
        b = np.asarray(kv_bytes, dtype=np.float64)
        curve = self.profile.curves.get("attn_decode")
        if isinstance(curve, Curve):
            b = np.maximum(b, curve.x[0])
            return b / (np.asarray(curve(b)) * 1e9)
        ops = self.profile.ops
        return ops.attn_decode_launch_us * 1e-6 + b / (self.hbm_bytes_per_s * ops.attn_decode_frac)

    def elementwise_s(self, nbytes, kernels: int) -> np.ndarray:
        """``kernels`` memory-bound kernels moving ``nbytes`` in all (array): launches +
        bytes at the ``hbm`` curve's GB/s (at the size of one kernel) or at B x e_el."""
        b = np.asarray(nbytes, dtype=np.float64)
        ops = self.profile.ops
        curve = self.profile.curves.get("hbm")
        if isinstance(curve, Curve):
            per = np.maximum(b / max(kernels, 1), curve.x[0])
            rate = np.asarray(curve(per)) * 1e9
        else:
            rate = self.hbm_bytes_per_s * ops.elementwise_frac
        return kernels * ops.elementwise_launch_us * 1e-6 + b / rate

    def allreduce_s(self, nbytes, gpus: int) -> np.ndarray:
        """All-reduce of ``nbytes`` (array) over ``gpus`` GPUs; 0 for one GPU.

        Datasheet ring: latency + 2 (g - 1) / g x bytes / (link x e_comm). H100 NVLink
        450 GB/s, e_comm 0.668, 4.95 us, g 2, 8 MiB: 4.95 us + 8,388,608 B / 300.6 GB/s
        = 32.9 us.
        """
        b = np.asarray(nbytes, dtype=np.float64)
        if gpus <= 1:
            return np.zeros_like(b)
        grid = self.profile.curves.get("allreduce")
        if isinstance(grid, Grid):
            return b / (np.asarray(grid(np.maximum(b, grid.x[0]), gpus)) * 1e9)
        ops = self.profile.ops
        link = self.profile.gpu_link_gbps * 1e9 * ops.comm_frac
        return ops.comm_latency_us * 1e-6 + 2.0 * (gpus - 1) / gpus * b / link

    def alltoall_s(self, nbytes_per_gpu, gpus: int) -> np.ndarray:
        """All-to-all where each GPU sends ``nbytes_per_gpu`` (array) spread over ``gpus``
        GPUs: the (g - 1) / g share that leaves the GPU crosses the link; 0 for one GPU."""
        b = np.asarray(nbytes_per_gpu, dtype=np.float64)
        if gpus <= 1:
            return np.zeros_like(b)
        ops = self.profile.ops
        link = self.profile.gpu_link_gbps * 1e9 * ops.comm_frac
        return ops.comm_latency_us * 1e-6 + (gpus - 1) / gpus * b / link

    def measured_ranges(self) -> dict[str, tuple[float, float]]:
        """(lo, hi) of each measured curve's x axis: gemm tokens, prefill sequence tokens,
        decode KV bytes per layer and GPU. Empty for a datasheet profile."""
        curves, out = self.profile.curves, {}
        for name in ("gemm", "attn_prefill", "attn_decode"):
            if name in curves:
                out[name] = (curves[name].x[0], curves[name].x[-1])
        return out
