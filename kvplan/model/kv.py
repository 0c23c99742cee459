"""KV-cache and weight bytes derived from a ModelSpec (docs/models.md).

KV dtypes are what-ifs: ``bf16``/``fp16`` (2 B/element), ``fp8`` (1 B), and KIVI-style
``int4`` / ``int2``: 4 or 2 bits per element plus one fp16 scale and one fp16 zero point per
group of 32 elements (2 x 16 bits / 32 = 1 extra bit per element), i.e. 5 and 3 bits per
element. KIVI's full-precision residual window (the newest <= 128 tokens) is not modelled.
Quantized KV and token retention change model quality; kvplan only counts bytes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from kvplan.errors import KvplanError
from kvplan.model.spec import ModelSpec

KV_DTYPE_BITS = {"bf16": 16, "fp16": 16, "fp8": 8, "int4": 5, "int2": 3}
"""Stored bits per KV element including quantization metadata (int4/int2: +1 bit, see above)."""


def kv_dtype_bits(kv_dtype: str) -> int:
    """Bits per stored KV element; unknown names raise a KvplanError listing the valid ones."""
    try:
        return KV_DTYPE_BITS[kv_dtype]
    except KeyError:
        raise KvplanError(
            f"unknown KV dtype '{kv_dtype}' (expected one of {', '.join(KV_DTYPE_BITS)})"
        ) from None


def kv_elements_per_token_layer(spec: ModelSpec) -> int:
    """KV elements one token stores in one layer.

    MHA/GQA/MQA: K and V for every KV head -> 2 x kv_heads x head_dim
    (llama-3.1-8b: 2 x 8 x 128 = 2,048). MLA: the compressed latent plus the shared RoPE key
    -> kv_lora_rank + qk_rope_head_dim (deepseek-v2: 512 + 64 = 576).
    """
    if spec.is_mla:
        return spec.kv_lora_rank + spec.qk_rope_head_dim
    return 2 * spec.num_kv_heads * spec.head_dim


def kv_bytes_per_token_layer(spec: ModelSpec, kv_dtype: str = "bf16") -> int:
    """Bytes one token stores in one layer (rounded up to whole bytes)."""
    return math.ceil(kv_elements_per_token_layer(spec) * kv_dtype_bits(kv_dtype) / 8)


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str = "bf16") -> int:
    """KV bytes of one token over all layers, no window cap.

    llama-3.1-8b, bf16: 32 layers x 8 kv_heads x 128 head_dim x 2 (K,V) x 2 B = 131,072 B.
    deepseek-v2 (MLA), bf16: 60 layers x (512 + 64) x 2 B = 69,120 B.
    """
    return spec.num_layers * kv_bytes_per_token_layer(spec, kv_dtype)


def kv_bytes_for_context(spec: ModelSpec, n_tokens, kv_dtype: str = "bf16"):
    """KV bytes of one sequence of ``n_tokens`` with sliding-window layers capped at the window.

    ``n_tokens`` may be an int (returns int) or a numpy array (returns an int64 array).
    gemma-2-27b (23 global + 23 window-4,096 layers, 8,192 B/token/layer in bf16) at 8,192
    tokens: 23 x 8,192 x 8,192 + 23 x 4,096 x 8,192 = 2,315,255,808 B.
    """
    per_layer = kv_bytes_per_token_layer(spec, kv_dtype)
    n = np.asarray(n_tokens, dtype=np.int64)
    tokens_x_layers = np.zeros_like(n)
    for window, count in Counter(spec.windows).items():
        kept = n if window == 0 else np.minimum(n, window)
        tokens_x_layers = tokens_x_layers + count * kept
    total = tokens_x_layers * per_layer
    return int(total) if np.ndim(n_tokens) == 0 else total


@dataclass(frozen=True)
class Retention:
    """A token-retention what-if that keeps only some tokens' KV (changes model quality).

    StreamingLLM: ``sink_tokens`` first tokens + the ``window_tokens`` most recent ones.
    H2O-style: a ``keep_frac`` share of the context (heavy hitters + recent), at least 1 token.
    """

    sink_tokens: int = 0
    window_tokens: int = 0
    """0 = no StreamingLLM cap."""
    keep_frac: float = 1.0
    """H2O-style share of tokens kept (1.0 = keep all)."""

    def kept_tokens(self, n_tokens: int) -> int:
        """Tokens whose KV is kept: min(n, sink + window), then ceil(keep_frac x that).

        StreamingLLM sink 4 + window 2,044 at 10,000 tokens -> 2,048; H2O keep 0.2 of 10,000
        -> 2,000.
        """
        kept = n_tokens
        if self.window_tokens:
            kept = min(kept, self.sink_tokens + self.window_tokens)
        return min(kept, max(1, math.ceil(self.keep_frac * kept))) if kept else 0


def kv_bytes_retained(spec: ModelSpec, n_tokens: int, retention: Retention,
                      kv_dtype: str = "bf16") -> int:
    """KV bytes of one sequence under a retention what-if (window caps still apply)."""
    return kv_bytes_for_context(spec, retention.kept_tokens(n_tokens), kv_dtype)


def _attention_params(spec: ModelSpec) -> int:
    """Attention weights of one layer (biases ignored: < 0.1 % of any preset)."""
    h = spec.hidden_size
    if not spec.is_mla:
        q_o = 2 * h * spec.num_heads * spec.head_dim
        return q_o + 2 * h * spec.num_kv_heads * spec.head_dim
    qk_dim = spec.qk_nope_head_dim + spec.qk_rope_head_dim
    if spec.q_lora_rank:
        q = h * spec.q_lora_rank + spec.q_lora_rank + spec.q_lora_rank * spec.num_heads * qk_dim
    else:
        q = h * spec.num_heads * qk_dim
    kv_a = h * (spec.kv_lora_rank + spec.qk_rope_head_dim) + spec.kv_lora_rank
    kv_b = spec.kv_lora_rank * spec.num_heads * (spec.qk_nope_head_dim + spec.v_head_dim)
    return q + kv_a + kv_b + spec.num_heads * spec.v_head_dim * h


def _mlp_params(spec: ModelSpec, layer: int, active: bool) -> int:
    """Gated MLP (3 matrices) of one layer: dense, or shared + routed experts + router."""
    h = spec.hidden_size
    if not spec.is_moe or layer in spec.dense_layers:
        return 3 * h * spec.intermediate_size
    routed = spec.experts_per_token if active else spec.num_experts
    return (3 * h * (routed * spec.moe_intermediate_size + spec.shared_intermediate_size)
            + h * spec.num_experts)


def param_count(spec: ModelSpec, active: bool = False) -> int:
    """Parameters: embeddings + LM head + per layer (attention + MLP + 2 norms) + final norm.

    ``active=True`` counts only the experts one token runs (MoE). llama-3.1-8b:
    2 x 128,256 x 4,096 + 32 x (41,943,040 + 176,160,768 + 8,192) + 4,096 = 8,030,261,248.
    """
    embed = spec.vocab_size * spec.hidden_size * (1 if spec.tie_word_embeddings else 2)
    layers = sum(
        _attention_params(spec) + _mlp_params(spec, i, active) + 2 * spec.hidden_size
        for i in range(spec.num_layers)
    )
    return embed + layers + spec.hidden_size


def routed_expert_params(spec: ModelSpec) -> int:
    """Parameters of all routed experts over all MoE layers (mixtral-8x7b: 32 x 8 x 3 x 4,096
    x 14,336 = 45,097,156,608)."""
    return spec.moe_layers * spec.num_experts * 3 * spec.hidden_size * spec.moe_intermediate_size


def weight_bytes(spec: ModelSpec) -> int:
    """Bytes of all weights as stored (llama-3.1-70b bf16: 70,553,706,496 x 2 = 141.1 GB);
    routed experts at their own width where it differs (gpt-oss mxfp4)."""
    experts = routed_expert_params(spec)
    return round((param_count(spec) - experts) * spec.weight_bytes_per_param
                 + experts * spec.expert_bytes_per_param)
