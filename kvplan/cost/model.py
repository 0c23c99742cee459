"""CostModel: bytes and seconds of one serving replica (docs/cost-model.md).

One iteration of a mixed batch is the sum of three rooflines plus a fixed overhead::

    step = max(matmul FLOPs / C, weight bytes read / B)          (all tokens of the batch)
         + prefill attention FLOPs / C                            (compute-bound)
         + max(decode attention FLOPs / C, KV bytes read / B)     (memory-bound)
         + step_overhead

with C the achieved FLOP/s and B the achieved HBM bytes/s of the replica (tp GPUs). A
datasheet profile gives C = peak x compute_efficiency_frac and B = peak x hbm_efficiency_frac;
a calibrated one replaces them with its measured ``compute`` (tokens -> TFLOP/s) and ``hbm``
(bytes -> GB/s) curves, and ``step_covered`` flags batches outside the measured ranges.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from kvplan.errors import KvplanError
from kvplan.hardware.profile import HardwareProfile
from kvplan.model.flops import attn_flops_per_pair, matmul_flops_per_token
from kvplan.model.kv import kv_bytes_per_token, kv_bytes_per_token_layer, param_count, weight_bytes
from kvplan.model.spec import ModelSpec
from kvplan.units import GIB

_SCALAR_RUN_ITERS = 32
"""Decode runs sum this many iterations as floats before switching to arrays."""
GPU_MEMORY_UTILIZATION = 0.90
"""Share of HBM a server plans with (vLLM's default); the rest covers CUDA context,
workspaces, communication buffers and CUDA graphs."""


def attn_pairs(c, p):
    """Causal (query, key) pairs of a chunk of ``c`` new tokens after ``p`` computed ones.

    c x (p + (c + 1) / 2), exact in integers: c=3, p=2 -> 3 + 4 + 5 = 12. Arrays broadcast.
    """
    return c * (2 * p + c + 1) // 2


@dataclass(frozen=True)
class CostModel:
    """Step, prefill and transfer times of one replica of ``tp`` GPUs; build with build()."""

    spec: ModelSpec
    profile: HardwareProfile
    kv_dtype: str
    tp: int
    """GPUs per replica (tensor parallel); weights and KV are split over them."""
    kv_bytes_per_token: int
    """KV bytes of one token over all layers (no window cap), whole replica."""
    weight_bytes: int
    """Bytes of all weights, whole replica."""
    activation_reserve_bytes: int
    """HBM per GPU kept free of weights and KV (see activation_reserve)."""
    matmul_flops_per_token: int
    attn_flops_prefill_pair: int
    attn_flops_decode_pair: int
    dense_read_bytes: int
    """Weights every token of a step reads (all but routed experts and the input embedding)."""
    expert_bytes: int
    """Bytes of one routed expert (all MoE layers together); 0 for dense models."""

    @classmethod
    def build(cls, spec: ModelSpec, profile: HardwareProfile, kv_dtype: str = "bf16", *,
              tp: int | None = None, max_batched_tokens: int = 8192, max_seqs: int = 256
              ) -> CostModel:
        """Derive every constant once; ``tp=None`` picks the fewest GPUs (1, 2, 4, ...) that hold
        the weights with room left for KV."""
        wbytes = weight_bytes(spec)
        tp = tp or smallest_tp(spec, profile, max_batched_tokens, max_seqs)
        if not 1 <= tp <= profile.gpu.count:
            raise KvplanError(f"tp={tp} needs 1..{profile.gpu.count} GPUs ({profile.name} "
                              f"has {profile.gpu.count})")
        return cls(
            spec=spec, profile=profile, kv_dtype=kv_dtype, tp=tp,
            kv_bytes_per_token=kv_bytes_per_token(spec, kv_dtype),
            weight_bytes=wbytes,
            activation_reserve_bytes=activation_reserve(spec, profile, tp, max_batched_tokens,
                                                        max_seqs),
            matmul_flops_per_token=matmul_flops_per_token(spec),
            attn_flops_prefill_pair=attn_flops_per_pair(spec, "prefill"),
            attn_flops_decode_pair=attn_flops_per_pair(spec, "decode"),
            **_weight_read_split(spec),
        )

    def hbm_kv_capacity_bytes(self, hbm_kv_gib: float | None = None) -> int:
        """HBM for KV over the replica: ``hbm_kv_gib`` if given, else
        tp x (hbm_gib - weights / tp - activation reserve)."""
        if hbm_kv_gib is not None:
            return int(hbm_kv_gib * GIB)
        free = self.tp * (self.profile.gpu.hbm_gib * GIB - self.activation_reserve_bytes)
        free -= self.weight_bytes
        if free <= 0:
            raise KvplanError(
                f"{self.spec.name} weights ({self.weight_bytes / 1e9:.1f} GB) leave no KV room on "
                f"{self.tp} x {self.profile.gpu.model}; use more GPUs (tp)"
            )
        return int(free)

    def step_time_s(self, prefill_tokens, prefill_attn_pairs, decode_seqs, decode_context_tokens):
        """Seconds of one iteration: prefill chunks + decodes (decode args may be arrays).

        ``prefill_attn_pairs``: sum of attn_pairs(c, p) over the prefill chunks;
        ``decode_context_tokens``: sum of the decoding sequences' context lengths.
        Scalars take a plain-float path (no numpy overhead); arrays broadcast.
        """
        args = (prefill_tokens, prefill_attn_pairs, decode_seqs, decode_context_tokens)
        if not any(isinstance(a, (np.ndarray, list, tuple)) for a in args):
            if prefill_tokens + decode_seqs <= 0:
                return 0.0
            pt, pp, seqs, ctx = (float(a) for a in args)
            return float(self._step(pt, pp, seqs, ctx, _SCALAR))
        pt, pp, seqs, ctx = (np.asarray(a, dtype=np.float64) for a in args)
        t = self._step(pt, pp, seqs, ctx, _ARRAY)
        return np.where(pt + seqs > 0, t, 0.0)

    def decode_run_s(self, seqs: int, ctx0: int, horizon_s: float, max_iters: int
                     ) -> tuple[int, float]:
        """A run of decode-only iterations of ``seqs`` sequences, the j-th over context
        ``ctx0 + seqs x j``: it stops at the first iteration whose cumulative time reaches
        ``horizon_s``, or after ``max_iters``. Returns (iterations, their total seconds).

        The same figures as summing ``step_time_s(0, 0, seqs, ctx)`` one by one, to the last
        bit. Most runs are a few iterations, so a datasheet profile's are summed as floats;
        calibrated curves (and long runs) go through the array path.
        """
        total, j = 0.0, 0
        if not self._step_curves:
            n, overhead, compute = float(seqs), self._overhead_s, self._flops_per_s(1.0)
            read = self._weights_read_bytes(n)
            matmul = max(n * self.matmul_flops_per_token / compute,
                         read / self._hbm_bytes_per_s(read))
            for j in range(min(max_iters, _SCALAR_RUN_ITERS)):
                total += matmul + self._decode_s(n, float(ctx0 + seqs * j), compute) + overhead
                if total >= horizon_s:
                    return j + 1, total
            j += 1
            if j == max_iters:
                return j, total
        ctx = ctx0 + seqs * np.arange(j, max_iters)
        cum = np.cumsum(np.concatenate(([total], self.step_time_s(0, 0, seqs, ctx))))[1:]
        k = min(int(np.searchsorted(cum, horizon_s)) + 1, len(cum))
        return j + k, float(cum[k - 1])

    @cached_property
    def _step_curves(self) -> bool:
        return "compute" in self.profile.curves or "hbm" in self.profile.curves

    @cached_property
    def _overhead_s(self) -> float:
        return self.profile.gpu.step_overhead_us * 1e-6

    def _decode_s(self, seqs: float, ctx: float, compute: float) -> float:
        """The decode-attention term of ``_step`` (floats)."""
        kv_read = self._decode_kv_bytes(seqs, ctx, _SCALAR)
        return max(ctx * self.attn_flops_decode_pair / compute,
                   kv_read / self._hbm_bytes_per_s(max(kv_read, 1.0)))

    def _step(self, prefill_tokens, prefill_pairs, seqs, ctx, ops):
        """The roofline sum of the module docstring, for floats or arrays (``ops``)."""
        tokens = prefill_tokens + seqs
        compute = self._flops_per_s(ops.maximum(tokens, 1.0))
        read = self._weights_read_bytes(tokens)
        matmul = ops.maximum(tokens * self.matmul_flops_per_token / compute,
                             read / self._hbm_bytes_per_s(read))
        prefill_attn = prefill_pairs * self.attn_flops_prefill_pair / compute
        kv_read = self._decode_kv_bytes(seqs, ctx, ops)
        decode_attn = ops.maximum(ctx * self.attn_flops_decode_pair / compute,
                                  kv_read / self._hbm_bytes_per_s(ops.maximum(kv_read, 1.0)))
        return matmul + prefill_attn + decode_attn + self.profile.gpu.step_overhead_us * 1e-6

    def prefill_time_s(self, n_tokens: int, prior_tokens: int = 0) -> float:
        """One request's prefill of ``n_tokens`` after ``prior_tokens`` cached ones, alone."""
        return self.step_time_s(n_tokens, attn_pairs(n_tokens, prior_tokens), 0, 0)

    def transfer_time_s(self, link: str, nbytes):
        """Seconds to move ``nbytes`` of KV over a link of the replica.

        h2d/d2h: split evenly over the tp GPUs' own links; ssd_read/ssd_write: the node's
        drives striped; ssd_to_hbm: the two hops SSD -> DRAM -> HBM one after the other.
        """
        if link == "ssd_to_hbm":
            return self.transfer_time_s("ssd_read", nbytes) + self.transfer_time_s("h2d", nbytes)
        split = self.tp if link in ("h2d", "d2h") else 1
        if isinstance(nbytes, (list, tuple)):
            nbytes = np.asarray(nbytes, dtype=np.float64)
        return self.profile.link(link).transfer_time_s(nbytes / split)

    def transfer_covered(self, link: str, nbytes) -> bool | np.ndarray:
        """False where the transfer size lies outside a calibrated link curve's range."""
        if link == "ssd_to_hbm":
            return self.transfer_covered("ssd_read", nbytes) & self.transfer_covered("h2d", nbytes)
        share = np.asarray(nbytes, dtype=np.float64) / (self.tp if link in ("h2d", "d2h") else 1)
        return self.profile.link(link).covers(share if np.ndim(nbytes) else float(share))

    def step_covered(self, prefill_tokens, decode_seqs, decode_context_tokens) -> bool | np.ndarray:
        """False where a step's token count or bytes read fall outside the calibrated curves."""
        seqs = np.asarray(decode_seqs, dtype=np.float64)
        tokens = prefill_tokens + seqs
        ok = np.ones(np.shape(tokens), dtype=bool)
        curves = self.profile.curves
        if "compute" in curves:
            ok &= curves["compute"].covers(np.maximum(tokens, 1.0))
        if "hbm" in curves:
            ctx = np.asarray(decode_context_tokens, dtype=np.float64)
            read = self._weights_read_bytes(tokens) + self._decode_kv_bytes(seqs, ctx, _ARRAY)
            ok &= curves["hbm"].covers(read / self.tp)
        return bool(ok) if ok.ndim == 0 else ok

    def step_read_bytes(self, tokens: int, decode_seqs: int, decode_context_tokens: int
                        ) -> float:
        """HBM bytes one iteration of ``tokens`` tokens reads over the replica (scalars):
        weights + the decodes' KV, what ``step_covered`` checks against the hbm curve."""
        return float(self._weights_read_bytes(tokens)
                     + self._decode_kv_bytes(decode_seqs, decode_context_tokens, _SCALAR))

    def _flops_per_s(self, tokens):
        curve = self.profile.curves.get("compute")
        if curve is None:
            return self._peak_flops * self.profile.gpu.compute_efficiency_frac
        return curve(tokens) * self._peak_flops / self.profile.gpu.bf16_dense_tflops

    @cached_property
    def _peak_flops(self) -> float:
        """Peak FLOP/s of the replica: fp8 tensor cores for fp8 weights where the GPU has them."""
        gpu = self.profile.gpu
        fp8 = self.spec.weight_bytes_per_param <= 1 and gpu.fp8_dense_tflops > 0
        return self.tp * (gpu.fp8_dense_tflops if fp8 else gpu.bf16_dense_tflops) * 1e12

    def _hbm_bytes_per_s(self, nbytes):
        gpu, curve = self.profile.gpu, self.profile.curves.get("hbm")
        if curve is None:
            return self.tp * gpu.hbm_bw_gbps * gpu.hbm_efficiency_frac * 1e9
        return self.tp * curve(nbytes / self.tp) * 1e9

    def _weights_read_bytes(self, tokens):
        """Dense weights + the routed experts a batch of ``tokens`` touches on average:
        E x (1 - (1 - k/E)^tokens) distinct experts per MoE layer (uniform routing)."""
        if not self.expert_bytes:
            return tokens * 0.0 + self.dense_read_bytes
        e, k = self.spec.num_experts, self.spec.experts_per_token
        return self.dense_read_bytes + e * (1.0 - (1.0 - k / e) ** tokens) * self.expert_bytes

    def _decode_kv_bytes(self, seqs, ctx, ops):
        """KV bytes the decodes read: seqs x KV of the mean context, window caps applied."""
        mean = ops.divide(ctx, seqs)
        layer_tokens = sum(n * (mean if w == 0 else ops.minimum(mean, w))
                           for w, n in self._window_counts)
        return seqs * layer_tokens * self._kv_bytes_per_layer

    @cached_property
    def _window_counts(self) -> tuple[tuple[int, int], ...]:
        return tuple(Counter(self.spec.windows).items())

    @cached_property
    def _kv_bytes_per_layer(self) -> int:
        return kv_bytes_per_token_layer(self.spec, self.kv_dtype)


@dataclass(frozen=True)
class _Ops:
    """Elementwise max / min / safe division for floats or numpy arrays."""

    maximum: Callable
    minimum: Callable
    divide: Callable


_SCALAR = _Ops(max, min, lambda a, b: a / b if b > 0 else 0.0)
_ARRAY = _Ops(np.maximum, np.minimum,
              lambda a, b: np.divide(a, b, out=np.zeros_like(a), where=b > 0))


def _weight_read_split(spec: ModelSpec) -> dict[str, int]:
    """Bytes read by every step vs per routed expert; the input embedding is a row lookup."""
    bpp = spec.weight_bytes_per_param
    embedding = 0 if spec.tie_word_embeddings else spec.vocab_size * spec.hidden_size
    moe_layers = spec.num_layers - spec.first_dense_layers if spec.is_moe else 0
    expert = 3 * spec.hidden_size * spec.moe_intermediate_size * moe_layers
    routed = spec.num_experts * expert
    return {"dense_read_bytes": round((param_count(spec) - embedding - routed) * bpp),
            "expert_bytes": round(expert * bpp)}


def activation_reserve(spec: ModelSpec, profile: HardwareProfile, tp: int = 1,
                       max_batched_tokens: int = 8192, max_seqs: int = 256) -> int:
    """HBM bytes per GPU kept for everything but weights and KV.

    (1 - 0.90) x HBM (vLLM gpu_memory_utilization default) + activations of one forward pass
    of max_batched_tokens tokens, tokens x (4 x hidden + 2 x mlp_width / tp) x 2 B, + fp32
    logits of max_seqs sequences. llama-3.1-8b on h100-sxm: 0.1 x 79.65 GiB
    + 8,192 x (16,384 + 28,672) x 2 + 256 x 128,256 x 4 = 9,421,885,277 B (8.77 GiB).
    """
    mlp_width = spec.intermediate_size
    if spec.is_moe:
        mlp_width = spec.moe_intermediate_size * (spec.experts_per_token + spec.num_shared_experts)
        mlp_width = max(mlp_width, spec.intermediate_size if spec.first_dense_layers else 0)
    act = max_batched_tokens * (4 * spec.hidden_size + 2 * mlp_width // tp) * 2
    logits = max_seqs * spec.vocab_size * 4
    return math.ceil((1 - GPU_MEMORY_UTILIZATION) * profile.gpu.hbm_gib * GIB) + act + logits


def smallest_tp(spec: ModelSpec, profile: HardwareProfile, max_batched_tokens: int = 8192,
                max_seqs: int = 256) -> int:
    """Fewest GPUs (a power of two up to gpu.count) whose HBM holds weights + reserve + >= 10 %
    of HBM for KV; raises KvplanError when even the whole node is too small."""
    wbytes, tp = weight_bytes(spec), 1
    while tp <= profile.gpu.count:
        per_gpu = profile.gpu.hbm_gib * GIB
        reserve = activation_reserve(spec, profile, tp, max_batched_tokens, max_seqs)
        if per_gpu - reserve - wbytes / tp >= 0.1 * per_gpu:
            return tp
        tp *= 2
    raise KvplanError(f"{spec.name} weights ({wbytes / 1e9:.1f} GB) do not fit on "
                      f"{profile.gpu.count} x {profile.gpu.model} ({profile.name})")
