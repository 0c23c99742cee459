"""Layer-wise load overlap: how much of a request's KV copy hides behind its own prefill.

An engine that loads KV layer by layer during prefill (LMCache ``use_layerwise``, SGLang
HiCache's load-back; docs/engines.md) starts computing layer i as soon as layer i's copy has
landed, while layer i+1 is still copying. With ``L`` layers, a copy of ``c`` s per layer and a
compute of ``p`` s per layer, layer i's compute ends at ``max(c*i + p, end of layer i-1 + p)``,
so the prefill chunk ends at ``c + (L-1) * max(c, p) + p``. Against a prefill that computes
without waiting (``L * p``) the request stalls::

    stall = c + (L - 1) * max(c - p, 0)

Worked example: 32 layers, copy 6 ms/layer, compute 4 ms/layer ->
stall = 6 + 31 x 2 = 68 ms = 32 x 6 - 31 x 4 ms; loading first and computing after would
stall 32 x 6 = 192 ms. The copy hides ``(L - 1) * min(c, p)`` = 124 ms behind compute.
"""

from __future__ import annotations


def layerwise_stall_s(copy_s: float, compute_s: float, layers: int) -> float:
    """Stall of a prefill chunk whose KV copy (``copy_s`` over all layers) overlaps its own
    compute (``compute_s`` over all layers), layer by layer. Example: (0.192, 0.128, 32) ->
    0.068 (module docstring)."""
    return copy_s - hidden_s(copy_s, compute_s, layers)


def hidden_s(copy_s: float, compute_s: float, layers: int) -> float:
    """The part of ``copy_s`` hidden behind compute: ``(L - 1) * min(c, p)``.
    Example: (0.192, 0.128, 32) -> 31 x 4 ms = 0.124."""
    if layers <= 1 or copy_s <= 0.0 or compute_s <= 0.0:
        return 0.0
    return (layers - 1) * min(copy_s, compute_s) / layers
