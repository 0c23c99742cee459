"""StepModel: one iteration's time as a sum of per-operation parts (docs/cost-model.md).

Built once per (model, profile, layout); every part is a model-specific 1-D table over the one
quantity it depends on, so a step costs a few table lookups::

    step = tokens(T)                 weight GEMMs, routed experts, elementwise, TP all-reduce,
                                     EP all-to-all: T = prefill tokens + decode sequences
         + lm_head(S)                S = sampled tokens (decodes + prompts that finish)
         + P x pair_s(s) + extra     prefill attention: P causal (query, key) pairs, s the
                                     chunk's sequence length, extra = fused RoPE / KV write
         + sum over window groups of layers x decode(kv bytes per layer per GPU)
         + overhead + per_seq x sequences

All times are per GPU of a replica (its tp GPUs run in lock step).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from kvplan.cost.layout import Layout
from kvplan.cost.ops import ACT_BYTES, OpTimes
from kvplan.cost.tables import Table, token_grid
from kvplan.model.flops import attn_flops_per_pair_layer
from kvplan.model.kv import kv_bytes_per_token_layer
from kvplan.model.spec import ModelSpec

TOKEN_PARTS = ("gemm", "experts", "elementwise", "tp_allreduce", "ep_alltoall")
"""Parts of the tokens table, in the order they are summed."""
PARTS = (*TOKEN_PARTS, "lm_head", "attn_prefill", "attn_decode", "overhead")
"""Every named part of a step (CostModel.step_parts)."""
KV_GRID = np.geomspace(1024.0, 2.0**42, 32 * 32 + 1)
"""KV bytes per layer and GPU at which the decode-attention table is evaluated."""


@dataclass(frozen=True)
class Shape:
    """One weight GEMM per layer: (n x k) weight, ``layers`` times per step."""

    n: float
    k: float
    layers: int
    weight_bytes: float


def kv_heads_per_gpu(spec: ModelSpec, tp: int) -> int:
    """KV heads each GPU stores: ceil(kv_heads / tp) (replicated when tp > kv_heads); MLA: the
    latent is stored whole on every GPU (reported as 1 of 1)."""
    return 1 if spec.is_mla else -(-spec.num_kv_heads // tp)


def kv_share_per_gpu(spec: ModelSpec, tp: int) -> float:
    """Share of one token's KV that each GPU stores: llama-3.1-8b (8 KV heads) tp 2 -> 4 / 8 =
    0.5; tp 16 -> 1 / 8 (each KV head on two GPUs); MLA -> 1.0 (latent replicated)."""
    return 1.0 if spec.is_mla else kv_heads_per_gpu(spec, tp) / spec.num_kv_heads


def dense_shapes(spec: ModelSpec, tp: int) -> list[Shape]:
    """Weight GEMMs every token runs, per GPU: attention projections, dense MLPs, shared experts
    and the router (routed experts: StepModel._experts)."""
    h, bpp = spec.hidden_size, spec.weight_bytes_per_param
    heads = spec.num_heads // tp
    layers = spec.num_layers
    out = _attention_shapes(spec, tp, heads, layers)
    dense_mlp = layers - spec.moe_layers
    if dense_mlp:
        i = spec.intermediate_size / tp
        out += [Shape(2 * i, h, dense_mlp, bpp), Shape(h, i, dense_mlp, bpp)]
    if spec.moe_layers:
        out.append(Shape(spec.num_experts, h, spec.moe_layers, bpp))
        if spec.shared_intermediate_size:
            s = spec.shared_intermediate_size / tp
            out += [Shape(2 * s, h, spec.moe_layers, bpp), Shape(h, s, spec.moe_layers, bpp)]
    return out


def _attention_shapes(spec: ModelSpec, tp: int, heads: int, layers: int) -> list[Shape]:
    h, bpp, d = spec.hidden_size, spec.weight_bytes_per_param, spec.head_dim
    if not spec.is_mla:
        qkv = (heads + 2 * kv_heads_per_gpu(spec, tp)) * d
        return [Shape(qkv, h, layers, bpp), Shape(h, heads * d, layers, bpp)]
    qk = spec.qk_nope_head_dim + spec.qk_rope_head_dim
    q = [Shape(spec.q_lora_rank, h, layers, bpp), Shape(heads * qk, spec.q_lora_rank, layers, bpp)] \
        if spec.q_lora_rank else [Shape(heads * qk, h, layers, bpp)]
    return q + [Shape(spec.kv_lora_rank + spec.qk_rope_head_dim, h, layers, bpp),
                Shape(heads * (spec.qk_nope_head_dim + spec.v_head_dim), spec.kv_lora_rank, layers,
                      bpp),
                Shape(h, heads * spec.v_head_dim, layers, bpp)]


class StepModel:
    """The tables of one (model, profile, layout); ``step`` evaluates them (scalars or arrays)."""

    def __init__(self, spec: ModelSpec, layout: Layout, ops: OpTimes, kv_dtype: str) -> None:
        self.spec, self.layout, self.ops = spec, layout, ops
        grid = ops.profile.curves.get("gemm")
        self.token_x = token_grid(grid.x if grid is not None else ())
        parts = self._token_parts(self.token_x)
        self.token_parts = {name: Table(self.token_x, y) for name, y in parts.items()}
        self.tokens = Table(self.token_x, sum(parts[name] for name in TOKEN_PARTS))
        self.lm_head = Table(self.token_x, ops.gemm_s(self.token_x, spec.vocab_size / layout.tp,
                                                       spec.hidden_size))
        self._prefill_tables()
        self._decode_tables(kv_dtype)
        gpu, o = ops.profile.gpu, ops.profile.ops
        self.overhead_s, self.per_seq_s = gpu.step_overhead_us * 1e-6, o.overhead_per_seq_us * 1e-6

    # -- building -------------------------------------------------------------------------------

    def _token_parts(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Seconds of each tokens-proportional part at ``t`` tokens per step (arrays)."""
        spec, lay, ops = self.spec, self.layout, self.ops
        gemm = sum(s.layers * ops.gemm_s(t, s.n, s.k, s.weight_bytes)
                   for s in dense_shapes(spec, lay.tp))
        experts, assignments, width = self._experts(t)
        h, layers = spec.hidden_size, spec.num_layers
        dense_mlp = layers - spec.moe_layers
        norms = layers * ops.elementwise_s(t * 16.0 * h, 2)
        act = dense_mlp * ops.elementwise_s(t * 3.0 * ACT_BYTES * spec.intermediate_size / lay.tp, 1)
        if spec.moe_layers:
            moe_act = assignments * width + t * spec.shared_intermediate_size / lay.tp
            act = act + spec.moe_layers * ops.elementwise_s(moe_act * 3.0 * ACT_BYTES, 1)
        allreduce = (2 * layers + 1) * ops.allreduce_s(t * h * ACT_BYTES, lay.tp)
        dispatch = t / lay.tp * spec.experts_per_token * h * ACT_BYTES
        alltoall = 2 * spec.moe_layers * ops.alltoall_s(dispatch, lay.ep)
        return {"gemm": gemm, "experts": experts, "elementwise": norms + act,
                "tp_allreduce": allreduce, "ep_alltoall": alltoall}

    def _experts(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Routed-expert GEMM seconds per step on the busiest GPU, its token-expert
        assignments, and the expert width it computes (arrays over ``t``).

        With ``ep`` = 1 each GPU holds a 1/tp slice of all E experts and sees every token;
        with ``ep`` > 1 it holds E / ep whole experts and the group's tp-replicas send it
        their tokens. Distinct experts touched by n tokens with top-k of E (uniform routing):
        E_local x (1 - (1 - k/E)^n); assignments per GPU = t x k / tp (x imbalance under EP).
        Mixtral (E 8, k 2), tp 1, 4 tokens: 8 x (1 - 0.75^4) = 5.47 experts, 8 assignments,
        1.46 tokens each.
        """
        spec, lay = self.spec, self.layout
        if not spec.moe_layers:
            zero = np.zeros_like(t)
            return zero, zero, 0.0
        e, k = spec.num_experts, spec.experts_per_token
        if lay.ep == 1:
            local, group_tokens, width, imb = e, t, spec.moe_intermediate_size / lay.tp, 1.0
        else:
            local, group_tokens = e / lay.ep, t * lay.ep / lay.tp
            width, imb = float(spec.moe_intermediate_size), lay.expert_imbalance
        touched = local * (1.0 - (1.0 - k / e) ** group_tokens)
        assignments = group_tokens * k * local / e * imb
        m = assignments / touched
        h, bpp = spec.hidden_size, spec.expert_bytes_per_param
        per_expert = self.ops.gemm_s(m, 2 * width, h, bpp) + self.ops.gemm_s(m, h, width, bpp)
        return spec.moe_layers * touched * per_expert, assignments, width

    def _prefill_tables(self) -> None:
        """Seconds per causal pair (all layers) vs sequence length, and the per-step extra."""
        spec, lay, ops = self.spec, self.layout, self.ops
        heads = spec.num_heads // lay.tp
        flops_pair = attn_flops_per_pair_layer(spec, "prefill") / lay.tp
        tflops = ops.attn_prefill_tflops(self.token_x, heads)
        self.pair_s = Table(self.token_x, spec.num_layers * flops_pair / (tflops * 1e12))
        self.prefill_extra_s = spec.num_layers * ops.profile.ops.attn_prefill_extra_us * 1e-6
        self.decode_flops_s = attn_flops_per_pair_layer(spec, "decode") / lay.tp / (
            float(ops.attn_prefill_tflops(self.token_x[-1], heads)) * 1e12)

    def _decode_tables(self, kv_dtype: str) -> None:
        """One layer's decode attention vs KV bytes per GPU: max(read time, FLOPs time); and
        the layers per sliding window (0 = global)."""
        spec = self.spec
        share = kv_share_per_gpu(spec, self.layout.tp)
        self.kv_layer_bytes = kv_bytes_per_token_layer(spec, kv_dtype) * share
        """KV bytes one token stores in one layer on one GPU."""
        compute = KV_GRID / self.kv_layer_bytes * self.decode_flops_s
        self.decode = Table(KV_GRID, np.maximum(self.ops.attn_decode_s(KV_GRID), compute))
        self.window_counts = tuple(Counter(spec.windows).items())

    # -- evaluation -----------------------------------------------------------------------------

    def step(self, pt, pp, seqs, ctx):
        """Seconds of one iteration (floats, or arrays broadcast together); 0 when empty."""
        if isinstance(seqs, np.ndarray) or isinstance(pt, np.ndarray):
            return self._step_arrays(*np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                                            for a in (pt, pp, seqs, ctx))))
        tokens = pt + seqs
        if tokens <= 0:
            return 0.0
        n = seqs + (1.0 if pt > 0 else 0.0)
        t = self.tokens(tokens) + self.lm_head(n) + self.overhead_s + self.per_seq_s * n
        if pt > 0:
            t += pp * self.pair_s(pp / pt + (pt - 1.0) * 0.5) + self.prefill_extra_s
        if seqs > 0:
            mean = ctx / seqs
            for w, layers in self.window_counts:
                t += layers * self.decode(seqs * (mean if w == 0 else min(mean, w))
                                          * self.kv_layer_bytes)
        return t

    def _step_arrays(self, pt, pp, seqs, ctx):
        tokens = pt + seqs
        has_p = pt > 0
        n = seqs + np.where(has_p, 1.0, 0.0)
        t = self.tokens(np.maximum(tokens, 1.0)) + self.lm_head(np.maximum(n, 1.0)) \
            + self.overhead_s + self.per_seq_s * n
        safe_pt = np.where(has_p, pt, 1.0)
        prefill = pp * self.pair_s(pp / safe_pt + (safe_pt - 1.0) * 0.5) + self.prefill_extra_s
        t = t + np.where(has_p, prefill, 0.0)
        mean = np.divide(ctx, seqs, out=np.zeros_like(ctx), where=seqs > 0)
        for w, layers in self.window_counts:
            kept = mean if w == 0 else np.minimum(mean, w)
            t = t + np.where(seqs > 0, layers * self.decode(seqs * kept * self.kv_layer_bytes), 0.0)
        return np.where(tokens > 0, t, 0.0)

    def decode_fixed(self, seqs: float) -> float:
        """The context-free share of a decode-only step of ``seqs`` sequences (``step`` adds
        the decode attention to exactly this sum)."""
        return self.tokens(seqs) + self.lm_head(seqs) + self.overhead_s + self.per_seq_s * seqs

    def decode_step(self, seqs: float, ctx, fixed: float):
        """A decode-only step: ``fixed`` (decode_fixed) plus the decode attention of ``seqs``
        sequences over ``ctx`` context tokens in all (a float or an array), added group by
        group in ``step``'s order, so the result is the same to the last bit."""
        mean = ctx / seqs
        t = fixed
        for w, layers in self.window_counts:
            kept = mean if w == 0 else (np.minimum(mean, w) if isinstance(mean, np.ndarray)
                                        else min(mean, w))
            t = t + layers * self.decode(seqs * kept * self.kv_layer_bytes)
        return t

    def parts(self, pt: float, pp: float, seqs: float, ctx: float) -> dict[str, float]:
        """The named parts of one step (floats); they sum to ``step`` up to rounding."""
        tokens = pt + seqs
        if tokens <= 0:
            return dict.fromkeys(PARTS, 0.0)
        n = seqs + (1.0 if pt > 0 else 0.0)
        out = {name: table(tokens) for name, table in self.token_parts.items()}
        out["lm_head"] = self.lm_head(n)
        out["attn_prefill"] = (pp * self.pair_s(pp / pt + (pt - 1.0) * 0.5)
                               + self.prefill_extra_s) if pt > 0 else 0.0
        decode = 0.0
        if seqs > 0:
            mean = ctx / seqs
            for w, layers in self.window_counts:
                decode += layers * self.decode(seqs * (mean if w == 0 else min(mean, w))
                                               * self.kv_layer_bytes)
        out["attn_decode"] = decode
        out["overhead"] = self.overhead_s + self.per_seq_s * n
        return out

    def decode_kv_bytes(self, seqs: float, ctx: float) -> float:
        """KV bytes per GPU one global layer's decode attention reads (what the attn_decode
        curve is indexed by)."""
        return seqs * (ctx / seqs) * self.kv_layer_bytes if seqs > 0 else 0.0
