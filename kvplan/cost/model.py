"""CostModel: bytes and seconds of one serving replica (docs/cost-model.md).

One iteration of a mixed batch is a sum of per-operation parts (kvplan.cost.parts): weight
GEMMs and routed experts vs the tokens in the step, prefill attention vs its (query, key)
pairs and sequence length, decode attention vs the KV bytes it reads, elementwise kernels,
the LM head for the sampled tokens, the TP all-reduce and EP all-to-all over the GPU-to-GPU
link, and a framework overhead per iteration and running sequence. Each operation's time
comes from the profile (kvplan.cost.ops): a datasheet form, or a measured curve of a
calibrated or imported profile, whose ranges ``step_covered`` / ``coverage_ranges`` report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from kvplan.cost.layout import Layout, check_layout
from kvplan.cost.ops import OpTimes
from kvplan.cost.parts import StepModel, kv_share_per_gpu
from kvplan.errors import KvplanError
from kvplan.hardware.profile import HardwareProfile
from kvplan.model.kv import kv_bytes_per_token, routed_expert_params, weight_bytes
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
    """Step, prefill and transfer times of one replica (``layout.tp`` GPUs); build with build()."""

    spec: ModelSpec
    profile: HardwareProfile
    kv_dtype: str
    layout: Layout
    """tp GPUs per replica, dp replicas, ep expert group (kvplan.cost.layout)."""
    kv_bytes_per_token: int
    """KV bytes of one token over all layers (no window cap), as the model stores it once."""
    weight_bytes: int
    """Bytes of all weights of the model."""
    weight_bytes_per_gpu: int
    """Weights each GPU of the replica holds (TP slices; whole experts under EP)."""
    activation_reserve_bytes: int
    """HBM per GPU kept free of weights and KV (see activation_reserve)."""

    @classmethod
    def build(cls, spec: ModelSpec, profile: HardwareProfile, kv_dtype: str = "bf16", *,
              tp: int | None = None, layout: Layout | None = None,
              max_batched_tokens: int = 8192, max_seqs: int = 256) -> CostModel:
        """Derive every table once. ``layout`` wins over ``tp``; a layout without tp gets the
        fewest GPUs (1, 2, 4, ...) that hold the weights with room left for KV."""
        layout = layout or Layout(tp=tp)
        check_layout(layout, spec, profile)
        if layout.tp is None:
            layout = replace(layout, tp=smallest_tp(spec, profile, max_batched_tokens, max_seqs,
                                                    layout))
        return cls(
            spec=spec, profile=profile, kv_dtype=kv_dtype, layout=layout,
            kv_bytes_per_token=kv_bytes_per_token(spec, kv_dtype),
            weight_bytes=weight_bytes(spec),
            weight_bytes_per_gpu=weights_per_gpu(spec, layout),
            activation_reserve_bytes=activation_reserve(spec, profile, layout.tp,
                                                        max_batched_tokens, max_seqs),
        )

    @property
    def tp(self) -> int:
        """GPUs per replica."""
        return self.layout.tp

    @cached_property
    def steps(self) -> StepModel:
        """The per-operation tables (built on first use)."""
        fp8 = self.spec.weight_bytes_per_param <= 1
        return StepModel(self.spec, self.layout, OpTimes(self.profile, fp8), self.kv_dtype)

    def hbm_kv_capacity_bytes(self, hbm_kv_gib: float | None = None) -> int:
        """HBM for KV over the replica, in bytes of whole-token KV (kv_bytes_per_token each):
        ``hbm_kv_gib`` if given, else tp x (hbm_gib - weights per GPU - activation reserve)
        / the share of a token's KV each GPU stores (1/tp for GQA with tp <= KV heads; MLA
        keeps the whole latent on every GPU, so its capacity does not grow with tp)."""
        if hbm_kv_gib is not None:
            return int(hbm_kv_gib * GIB)
        per_gpu = self.profile.gpu.hbm_gib * GIB - self.activation_reserve_bytes
        per_gpu -= self.weight_bytes_per_gpu
        if per_gpu <= 0:
            raise KvplanError(
                f"{self.spec.name} weights ({self.weight_bytes / 1e9:.1f} GB, "
                f"{self.weight_bytes_per_gpu / 1e9:.1f} GB per GPU) leave no KV room on "
                f"{self.tp} x {self.profile.gpu.model}; use more GPUs (--tp)"
            )
        return int(per_gpu / kv_share_per_gpu(self.spec, self.tp))

    def step_time_s(self, prefill_tokens, prefill_attn_pairs, decode_seqs, decode_context_tokens):
        """Seconds of one iteration: prefill chunks + decodes (any argument may be an array).

        ``prefill_attn_pairs``: sum of attn_pairs(c, p) over the prefill chunks;
        ``decode_context_tokens``: sum of the decoding sequences' context lengths.
        Scalars take a plain-float path (a few table lookups); arrays broadcast.
        """
        if isinstance(decode_seqs, (list, tuple)) or isinstance(decode_context_tokens,
                                                                 (list, tuple)):
            decode_seqs = np.asarray(decode_seqs, dtype=np.float64)
            decode_context_tokens = np.asarray(decode_context_tokens, dtype=np.float64)
        if isinstance(decode_seqs, np.ndarray) or isinstance(decode_context_tokens, np.ndarray) \
                or isinstance(prefill_tokens, np.ndarray):
            return self.steps.step(np.asarray(prefill_tokens, dtype=np.float64),
                                   np.asarray(prefill_attn_pairs, dtype=np.float64),
                                   np.asarray(decode_seqs, dtype=np.float64),
                                   np.asarray(decode_context_tokens, dtype=np.float64))
        return self.steps.step(float(prefill_tokens), float(prefill_attn_pairs),
                               float(decode_seqs), float(decode_context_tokens))

    def step_parts(self, prefill_tokens: int, prefill_attn_pairs: int, decode_seqs: int,
                   decode_context_tokens: int) -> dict[str, float]:
        """The named parts of one iteration in seconds (kvplan.cost.parts.PARTS): gemm,
        experts, elementwise, tp_allreduce, ep_alltoall, lm_head, attn_prefill, attn_decode,
        overhead. Their sum is ``step_time_s`` (up to rounding)."""
        return self.steps.parts(float(prefill_tokens), float(prefill_attn_pairs),
                                float(decode_seqs), float(decode_context_tokens))

    def decode_run_s(self, seqs: int, ctx0: int, horizon_s: float, max_iters: int
                     ) -> tuple[int, float]:
        """A run of decode-only iterations of ``seqs`` sequences, the j-th over context
        ``ctx0 + seqs x j``: it stops at the first iteration whose cumulative time reaches
        ``horizon_s``, or after ``max_iters``. Returns (iterations, their total seconds).

        The same figures as summing ``step_time_s(0, 0, seqs, ctx)`` one by one, to the last
        bit: the first iterations are summed as floats (most runs are short), the rest in
        one array call.
        """
        steps, n = self.steps, float(seqs)
        fixed, step = steps.decode_fixed(n), steps.decode_step
        total, j = 0.0, 0
        for j in range(min(max_iters, _SCALAR_RUN_ITERS)):
            total += step(n, float(ctx0 + seqs * j), fixed)
            if total >= horizon_s:
                return j + 1, total
        j += 1
        if j >= max_iters:
            return max_iters, total
        ctx = (ctx0 + seqs * np.arange(j, max_iters)).astype(np.float64)
        cum = np.cumsum(np.concatenate(([total], step(n, ctx, fixed))))[1:]
        k = min(int(np.searchsorted(cum, horizon_s)) + 1, len(cum))
        return j + k, float(cum[k - 1])

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

    def coverage_ranges(self) -> tuple[tuple[float, float, float] | None,
                                       tuple[float, float, float] | None]:
        """Measured ranges the simulator checks every step against, as (lo, hi, scale):
        tokens per step (the ``gemm`` grid) and ``step_read_bytes`` (the ``attn_decode``
        curve's KV bytes per layer and GPU, from 0: below its first point a decode kernel is
        held at that point's time, its floor); None where the profile has no such curve."""
        ranges = self.steps.ops.measured_ranges()
        tokens = ranges.get("gemm")
        read = ranges.get("attn_decode")
        return ((*tokens, 1.0) if tokens else None, (0.0, read[1], 1.0) if read else None)

    def step_covered(self, prefill_tokens, decode_seqs, decode_context_tokens) -> bool | np.ndarray:
        """False where a step's token count or the KV its decodes read fall outside the
        measured curves (always True on a datasheet profile)."""
        seqs = np.asarray(decode_seqs, dtype=np.float64)
        tokens = np.maximum(prefill_tokens + seqs, 1.0)
        ok = np.ones(np.shape(tokens), dtype=bool)
        tok, read = self.coverage_ranges()
        if tok is not None:
            ok &= (tokens >= tok[0]) & (tokens <= tok[1])
        if read is not None:
            ctx = np.asarray(decode_context_tokens, dtype=np.float64)
            kv = ctx * self.steps.kv_layer_bytes
            ok &= (seqs <= 0) | ((kv >= read[0]) & (kv <= read[1]))
        return bool(ok) if ok.ndim == 0 else ok

    def step_read_bytes(self, tokens: int, decode_seqs: int, decode_context_tokens: int
                        ) -> float:
        """KV bytes one global layer's decode attention reads on one GPU in this step (what
        ``coverage_ranges`` checks; ``tokens`` is unused, kept for the caller's signature)."""
        return self.steps.decode_kv_bytes(float(decode_seqs), float(decode_context_tokens))


def weights_per_gpu(spec: ModelSpec, layout: Layout) -> int:
    """Weight bytes on one GPU: everything but routed experts sliced over tp; routed experts
    sliced over tp (ep 1) or spread whole over ep GPUs. mixtral-8x7b (bf16) tp 2 ep 2: (1.6 B
    + 45.1 B / 2) x 2 B = 48.3 GB."""
    experts = routed_expert_params(spec)
    rest = weight_bytes(spec) - experts * spec.expert_bytes_per_param
    split = layout.ep if layout.ep > 1 else layout.tp
    return round(rest / layout.tp + experts * spec.expert_bytes_per_param / split)


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
        mlp_width = spec.moe_intermediate_size * spec.experts_per_token
        mlp_width += spec.shared_intermediate_size
        mlp_width = max(mlp_width, spec.intermediate_size if spec.dense_layers else 0)
    act = max_batched_tokens * (4 * spec.hidden_size + 2 * mlp_width // tp) * 2
    logits = max_seqs * spec.vocab_size * 4
    return math.ceil((1 - GPU_MEMORY_UTILIZATION) * profile.gpu.hbm_gib * GIB) + act + logits


def smallest_tp(spec: ModelSpec, profile: HardwareProfile, max_batched_tokens: int = 8192,
                max_seqs: int = 256, layout: Layout | None = None) -> int:
    """Fewest GPUs (a power of two up to gpu.count, dividing the heads, compatible with the
    layout's ep) whose HBM holds weights + reserve + >= 10 % of HBM for KV; raises
    KvplanError when even the whole node is too small."""
    layout = layout or Layout()
    wbytes, tp = weight_bytes(spec), 1
    while tp <= profile.gpu.count:
        per_gpu = profile.gpu.hbm_gib * GIB
        reserve = activation_reserve(spec, profile, tp, max_batched_tokens, max_seqs)
        trial = replace(layout, tp=tp)
        ep_ok = layout.ep == 1 or (layout.ep % tp == 0 and (tp * layout.dp) % layout.ep == 0)
        if spec.num_heads % tp == 0 and ep_ok and \
                per_gpu - reserve - weights_per_gpu(spec, trial) >= 0.1 * per_gpu:
            return tp
        tp *= 2
    raise KvplanError(f"{spec.name} weights ({wbytes / 1e9:.1f} GB) do not fit on "
                      f"{profile.gpu.count} x {profile.gpu.model} ({profile.name})")
