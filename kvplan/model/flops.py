"""FLOPs per token: weight matmuls plus the context-dependent attention term (docs/models.md).

A matmul of an (m x k) activation with a (k x n) weight costs 2·m·k·n FLOPs, so a token
costs 2 x (active matmul parameters). Attention adds, per layer and per (query, key) pair,
2·heads·(d_qk + d_v): the QK^T score and the weighted sum of V. The input embedding is a
lookup (no FLOPs); the LM head is counted for every token (an upper bound for prefill, where
servers compute logits of the last token only).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from kvplan.model.kv import param_count
from kvplan.model.spec import ModelSpec

Phase = Literal["prefill", "decode"]


def matmul_flops_per_token(spec: ModelSpec) -> int:
    """2 x (active parameters that take part in a matmul).

    llama-3.1-8b: 2 x (8,030,261,248 - 525,336,576 embedding) = 15,009,849,344 FLOPs.
    (The untied LM head stays in; a tied one is the embedding matrix used once as a matmul.)
    """
    embedding = spec.vocab_size * spec.hidden_size
    matmul = param_count(spec, active=True) - embedding
    if spec.tie_word_embeddings:
        matmul += embedding
    return 2 * matmul


def attn_flops_per_pair_layer(spec: ModelSpec, phase: Phase = "prefill") -> int:
    """FLOPs of one (query token, key token) pair in one layer: 2 x heads x (d_qk + d_v).

    MHA/GQA: d_qk = d_v = head_dim (llama-3.1-8b: 2 x 32 x 256 = 16,384). MLA prefill runs
    per-head (nope + rope, v_head_dim); MLA decode runs in the absorbed latent space
    (kv_lora_rank + rope, kv_lora_rank): deepseek-v2 decode 2 x 128 x (576 + 512) = 278,528.
    """
    if not spec.is_mla:
        return 2 * spec.num_heads * 2 * spec.head_dim
    if phase == "prefill":
        dims = spec.qk_nope_head_dim + spec.qk_rope_head_dim + spec.v_head_dim
    else:
        dims = 2 * spec.kv_lora_rank + spec.qk_rope_head_dim
    return 2 * spec.num_heads * dims


def attn_flops_per_pair(spec: ModelSpec, phase: Phase = "prefill") -> int:
    """Attention FLOPs of one (query, key) pair summed over all layers (no window cap)."""
    return spec.num_layers * attn_flops_per_pair_layer(spec, phase)


def attended_pairs(n_new: int, n_prior: int, window: int = 0) -> int:
    """(query, key) pairs when ``n_new`` tokens follow ``n_prior`` cached ones (causal).

    The token at 0-based position i attends to min(i + 1, window) keys::

        prior p=2, new c=3:  q2 -> k0..k2 (3), q3 -> 4, q4 -> 5   => 12 = c·(p + (c+1)/2)
        same with window 4:  3 + 4 + 4                              => 11
    """
    first, last = n_prior + 1, n_prior + n_new
    if window == 0 or last <= window:
        return (first + last) * n_new // 2
    if first > window:
        return window * n_new
    below = (first + window) * (window - first + 1) // 2
    return below + window * (last - window)


def prefill_flops(spec: ModelSpec, n_new: int, n_prior: int = 0) -> int:
    """FLOPs to prefill ``n_new`` tokens after ``n_prior`` cached ones, window caps applied."""
    per_layer = attn_flops_per_pair_layer(spec, "prefill")
    attn = sum(count * attended_pairs(n_new, n_prior, w) * per_layer
               for w, count in Counter(spec.windows).items())
    return n_new * matmul_flops_per_token(spec) + attn


def decode_flops(spec: ModelSpec, context_tokens: int) -> int:
    """FLOPs of one decode token that attends to ``context_tokens`` keys (itself included)."""
    per_layer = attn_flops_per_pair_layer(spec, "decode")
    attn = sum(count * (context_tokens if w == 0 else min(context_tokens, w)) * per_layer
               for w, count in Counter(spec.windows).items())
    return matmul_flops_per_token(spec) + attn
