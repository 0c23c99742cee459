"""Compute: matmul TFLOP/s vs shape, and one transformer layer of the chosen model.

Two regimes decide an LLM iteration's time:

- **compute-bound** (prefill, large batches): time = FLOPs / achieved TFLOP/s. A square bf16
  GEMM of size n costs 2n^3 FLOPs; an H200 peaks at 989 dense bf16 TFLOP/s (1,979 fp8) and
  achieves ~60-80 % on large shapes, much less on small ones.
- **bandwidth-bound** (decode): each step reads every weight and the whole KV context of every
  running sequence once and does ~2 FLOPs per weight per sequence, far below the roofline
  ridge (~200 FLOP/byte on an H200), so time = bytes read / achieved HBM bandwidth.

The layer is built at the model's real dimensions with random weights (GQA: fused QKV, SDPA,
gated MLP; MLA: latent down/up projections, absorbed latent attention for decode; MoE: the
experts a token activates, as one gated MLP of their total width) and timed for prefill vs
tokens and decode vs batch x context. Sliding-window layers are timed as global ones.

The per-operation sweep measures exactly the curves the cost model reads
(docs/cost-model.md): weight GEMMs over tokens x weight shape, causal prefill attention over
sequence length x heads, decode attention over KV bytes read.

Cases: ``matmul/bf16``, ``matmul/fp8``, ``matmul/fp32`` (CPU) with ``tokens`` = n;
``layer/prefill`` (batch 1, ``tokens`` = prompt length), ``layer/decode`` (``batch``,
``context``); ``flops`` = FLOPs of the call, ``size_bytes`` = weight + KV bytes it reads;
``gemm/bf16`` (``tokens`` = m, ``batch`` = n, ``context`` = k, ``size_bytes`` = weight bytes);
``attn/prefill`` (``tokens`` = sequence length, ``batch`` = query heads, head_dim 128, one KV
head per 4 query heads); ``attn/decode`` (``batch`` sequences x ``context`` tokens, 32 query
/ 8 KV heads of 128, ``size_bytes`` = KV bytes read).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvplan.calibrate.samples import Point
from kvplan.calibrate.session import Session
from kvplan.calibrate.sweeps import Sweep
from kvplan.model.spec import ModelSpec


@dataclass(frozen=True)
class Op:
    """One timed call with the work it does."""

    fn: Callable[[], object]
    flops: float
    bytes_read: int


def matmul_flops(m: int, n: int, k: int) -> float:
    """FLOPs of an (m x k) @ (k x n) product: one multiply and one add per term.

    >>> matmul_flops(4096, 4096, 4096) / 1e9   # 2 * 4096^3
    137.438953472
    """
    return 2.0 * m * n * k


def measure_matmul(sess: Session, sizes: tuple[int, ...], dtypes: tuple[str, ...]) -> None:
    """Square GEMM TFLOP/s for each size and dtype (``bf16``, ``fp8``, ``fp32``)."""
    import torch

    for dt in dtypes:
        for n in sizes:
            if sess.has_gpu and not sess.fits_gpu(3 * n * n * 2, f"matmul {dt} n={n}"):
                continue
            op = _matmul_op(torch, sess, n, dt)
            if op is None:
                return
            point = Point("compute", f"matmul/{dt}", size_bytes=0, flops=op.flops, tokens=n)
            sess.measure(point, op.fn)


def _matmul_op(torch, sess: Session, n: int, dt: str) -> Op | None:
    dev = sess.device
    if dt != "fp8":
        dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dt]
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        return Op(lambda: a @ b, matmul_flops(n, n, n), 0)
    if not (sess.has_gpu and torch.cuda.get_device_capability() >= (8, 9)):
        sess.log.note("matmul fp8: not measured (needs a GPU of compute capability >= 8.9)")
        return None
    a = torch.randn(n, n, device=dev).to(torch.float8_e4m3fn)
    b = torch.randn(n, n, device=dev).to(torch.float8_e4m3fn).t()
    one = torch.ones((), device=dev)
    return Op(lambda: torch._scaled_mm(a, b, one, one, out_dtype=torch.bfloat16),
              matmul_flops(n, n, n), 0)


def measure_layer(sess: Session, sweep: Sweep, spec: ModelSpec, seed: int) -> None:
    """Time one layer of ``spec``: prefill vs tokens, decode vs batch x context."""
    layer = RandomLayer(spec, sess.device, seed)
    for t in sweep.prefill_tokens:
        if sess.fits_gpu(layer.weight_bytes + layer.prefill_act_bytes(t), f"layer prefill {t}"):
            with sess.oom_guard(f"layer prefill at {t} tokens"):
                op = layer.prefill_op(t)
                sess.measure(Point("compute", "layer/prefill", op.bytes_read, op.flops, 1, t), op.fn)
    for b in sweep.decode_batches:
        for c in sweep.decode_contexts:
            if sess.fits_gpu(layer.weight_bytes + layer.kv_bytes(b, c), f"layer decode {b}x{c}"):
                with sess.oom_guard(f"layer decode at batch {b} x context {c}"):
                    op = layer.decode_op(b, c)
                    point = Point("compute", "layer/decode", op.bytes_read, op.flops, b, 1, c)
                    sess.measure(point, op.fn)


HEAD_DIM = 128
DECODE_HEADS = (32, 8)
"""(query, KV) heads of the decode-attention sweep (Llama-3-8B's GQA)."""


def measure_ops(sess: Session, sweep: Sweep, seed: int) -> None:
    """The per-operation curves: GEMMs, prefill attention, decode attention (bf16 on a GPU)."""
    ops = OpBench(sess.device, seed)
    for n, k in sweep.gemm_shapes:
        for m in sweep.gemm_tokens:
            if sess.fits_gpu(2 * (m * k + n * k + m * n), f"gemm {m}x{n}x{k}"):
                with sess.oom_guard(f"gemm {m}x{n}x{k}"):
                    op = ops.gemm(m, n, k)
                    sess.measure(Point("compute", "gemm/bf16", n * k * 2, op.flops, n, m, k), op.fn)
    for h in sweep.attn_heads:
        for t in sweep.prefill_tokens:
            if sess.fits_gpu(8 * t * h * HEAD_DIM * 2, f"attention prefill {h}x{t}"):
                with sess.oom_guard(f"attention prefill {h} heads x {t}"):
                    op = ops.prefill(h, t)
                    sess.measure(Point("compute", "attn/prefill", 0, op.flops, h, t), op.fn)
    for b in sweep.decode_batches:
        for c in sweep.decode_contexts:
            kv = b * c * DECODE_HEADS[1] * HEAD_DIM * 2 * 2
            if sess.fits_gpu(kv, f"attention decode {b}x{c}"):
                with sess.oom_guard(f"attention decode {b} x {c}"):
                    op = ops.decode(b, c)
                    sess.measure(Point("compute", "attn/decode", kv, op.flops, b, 1, c), op.fn)


class OpBench:
    """Random bf16 (fp32 on the CPU) operands for one GEMM or attention call."""

    def __init__(self, device: str, seed: int) -> None:
        import torch

        self.torch, self.device = torch, device
        self.dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def _rand(self, *shape: int):
        t = self.torch.empty(shape, device=self.device, dtype=self.dtype)
        return t.normal_(0.0, 0.02, generator=self.gen)

    def gemm(self, m: int, n: int, k: int) -> Op:
        """(m x k) activations @ (k x n) weight: 2mnk FLOPs, reads the weight once."""
        x, w = self._rand(m, k), self._rand(k, n)
        return Op(lambda: x @ w, matmul_flops(m, n, k), n * k * 2)

    def prefill(self, heads: int, tokens: int) -> Op:
        """Causal attention of one sequence: 4 x heads x 128 x t(t+1)/2 FLOPs."""
        F = self.torch.nn.functional
        kv = max(heads // 4, 1)
        q = self._rand(1, heads, tokens, HEAD_DIM)
        k, v = self._rand(1, kv, tokens, HEAD_DIM), self._rand(1, kv, tokens, HEAD_DIM)
        flops = 4.0 * heads * HEAD_DIM * tokens * (tokens + 1) / 2
        return Op(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                         enable_gqa=True), flops, 0)

    def decode(self, batch: int, context: int) -> Op:
        """One query token per sequence over ``context`` cached tokens (GQA 32 / 8 heads)."""
        F = self.torch.nn.functional
        heads, kvh = DECODE_HEADS
        q = self._rand(batch, kvh, heads // kvh, HEAD_DIM)
        k, v = self._rand(batch, kvh, context, HEAD_DIM), self._rand(batch, kvh, context, HEAD_DIM)
        kv = batch * context * kvh * HEAD_DIM * 2 * 2
        return Op(lambda: F.scaled_dot_product_attention(q, k, v), 4.0 * heads * HEAD_DIM
                  * batch * context, kv)


def ffn_width(spec: ModelSpec) -> int:
    """Gated-MLP width a token runs through: dense width, or its active + shared experts.

    >>> from kvplan.model.spec import load_model
    >>> ffn_width(load_model("mixtral-8x7b"))   # 2 active experts of 14,336
    28672
    """
    if not spec.is_moe:
        return spec.intermediate_size
    return spec.experts_per_token * spec.moe_intermediate_size + spec.shared_intermediate_size


class RandomLayer:
    """One decoder layer of ``spec`` with random weights: bf16 on a GPU, fp32 on the CPU.

    (fp32 on the CPU because bf16 CPU kernels are slow or missing on many hosts; byte counts
    below are always bf16, the serving dtype.)
    """

    def __init__(self, spec: ModelSpec, device: str, seed: int) -> None:
        import torch

        self.torch, self.spec, self.device = torch, spec, device
        self.dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.gen = torch.Generator(device=device).manual_seed(seed)
        s, h = spec, spec.hidden_size
        if s.is_mla:
            q_out = s.num_heads * (s.qk_nope_head_dim + s.qk_rope_head_dim)
            shapes = {"wq": (h, s.q_lora_rank), "wq_b": (s.q_lora_rank, q_out)} if s.q_lora_rank \
                else {"wq": (h, q_out)}
            shapes |= {
                "wkv_a": (h, s.kv_lora_rank + s.qk_rope_head_dim),
                "wkv_b": (s.kv_lora_rank, s.num_heads * (s.qk_nope_head_dim + s.v_head_dim)),
                "wo": (s.num_heads * s.v_head_dim, h),
            }
            self.kv_width = s.kv_lora_rank + s.qk_rope_head_dim
        else:
            qkv = (s.num_heads + 2 * s.num_kv_heads) * s.head_dim
            shapes = {"wqkv": (h, qkv), "wo": (s.num_heads * s.head_dim, h)}
            self.kv_width = 2 * s.num_kv_heads * s.head_dim
        f = ffn_width(spec)
        shapes |= {"wgu": (h, 2 * f), "wd": (f, h)}
        self.w = {k: self._rand(*v) for k, v in shapes.items()}
        self.weight_bytes = sum(t.numel() * 2 for t in self.w.values())

    def _rand(self, *shape: int):
        t = self.torch.empty(shape, device=self.device, dtype=self.dtype)
        return t.normal_(0.0, 0.02, generator=self.gen)  # in place: no fp32 temporary

    def kv_bytes(self, batch: int, context: int) -> int:
        """KV bytes of this layer for ``batch`` sequences of ``context`` tokens (bf16)."""
        return batch * context * self.kv_width * 2

    def prefill_act_bytes(self, tokens: int) -> int:
        """Generous bound on prefill activations: 8 x (tokens x widest projection) in bf16."""
        widest = max(t.shape[1] for t in self.w.values())
        return 8 * tokens * widest * 2

    def _matmul_flops(self, tokens: int, skip: tuple[str, ...] = ()) -> float:
        return sum(2.0 * tokens * t.numel() for k, t in self.w.items() if k not in skip)

    def _mlp(self, x):
        F = self.torch.nn.functional
        h = F.rms_norm(x, (x.shape[-1],))
        g, u = (h @ self.w["wgu"]).chunk(2, dim=-1)
        return x + (F.silu(g) * u) @ self.w["wd"]

    def prefill_op(self, tokens: int) -> Op:
        """Causal prefill of one prompt of ``tokens`` tokens through the layer."""
        x = self._rand(tokens, self.spec.hidden_size)
        attn = self._mla_prefill if self.spec.is_mla else self._gqa_prefill
        pairs = tokens * (tokens + 1) / 2
        s = self.spec
        qk, v = (
            (s.qk_nope_head_dim + s.qk_rope_head_dim, s.v_head_dim) if s.is_mla
            else (s.head_dim, s.head_dim)
        )
        flops = self._matmul_flops(tokens) + 2.0 * s.num_heads * (qk + v) * pairs
        return Op(lambda: self._mlp(x + attn(x)), flops, self.weight_bytes)

    def _gqa_prefill(self, x):
        F, s, t = self.torch.nn.functional, self.spec, x.shape[0]
        h = F.rms_norm(x, (x.shape[-1],))
        q, k, v = (h @ self.w["wqkv"]).split(
            [s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim, s.num_kv_heads * s.head_dim], -1
        )
        q = q.view(t, s.num_heads, s.head_dim).transpose(0, 1)
        k = k.view(t, s.num_kv_heads, s.head_dim).transpose(0, 1)
        v = v.view(t, s.num_kv_heads, s.head_dim).transpose(0, 1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return o.transpose(0, 1).reshape(t, -1) @ self.w["wo"]

    def _mla_prefill(self, x):
        torch, F, s, t = self.torch, self.torch.nn.functional, self.spec, x.shape[0]
        nope, rope, vd = s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim
        h = F.rms_norm(x, (x.shape[-1],))
        q = h @ self.w["wq"]
        if s.q_lora_rank:
            q = F.rms_norm(q, (q.shape[-1],)) @ self.w["wq_b"]
        c = h @ self.w["wkv_a"]
        kv = F.rms_norm(c[:, : s.kv_lora_rank], (s.kv_lora_rank,)) @ self.w["wkv_b"]
        kv = kv.view(t, s.num_heads, nope + vd)
        k_rope = c[:, s.kv_lora_rank :].unsqueeze(1).expand(t, s.num_heads, rope)
        k = torch.cat([kv[..., :nope], k_rope], dim=-1)
        v = F.pad(kv[..., nope:], (0, nope + rope - vd))  # pad V to the QK width, as FA kernels do
        q = q.view(t, s.num_heads, nope + rope)
        o = F.scaled_dot_product_attention(
            q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), is_causal=True
        )
        return o[..., :vd].transpose(0, 1).reshape(t, -1) @ self.w["wo"]

    def decode_op(self, batch: int, context: int) -> Op:
        """One decode step: ``batch`` sequences each attending to ``context`` cached tokens."""
        s = self.spec
        x = self._rand(batch, s.hidden_size)
        cache = self._rand(batch, context, self.kv_width)
        attn = self._mla_decode if s.is_mla else self._gqa_decode
        if s.is_mla:
            skip, absorbed = ("wkv_b",), 2.0 * batch * s.num_heads * s.kv_lora_rank * (
                s.qk_nope_head_dim + s.v_head_dim)
            per_pair = 2.0 * s.num_heads * (2 * s.kv_lora_rank + s.qk_rope_head_dim)
        else:
            skip, absorbed, per_pair = (), 0.0, 4.0 * s.num_heads * s.head_dim
        flops = self._matmul_flops(batch, skip) + absorbed + per_pair * batch * context
        nbytes = self.weight_bytes + self.kv_bytes(batch, context)
        return Op(lambda: self._mlp(x + attn(x, cache)), flops, nbytes)

    def _gqa_decode(self, x, cache):
        """GQA decode: the query heads of one KV head act as a short query sequence."""
        F, s, b = self.torch.nn.functional, self.spec, x.shape[0]
        group, kvh, d = s.num_heads // s.num_kv_heads, s.num_kv_heads, s.head_dim
        h = F.rms_norm(x, (x.shape[-1],))
        q = (h @ self.w["wqkv"])[:, : s.num_heads * d].view(b, kvh, group, d)
        k = cache[..., : kvh * d].unflatten(-1, (kvh, d)).transpose(1, 2)
        v = cache[..., kvh * d :].unflatten(-1, (kvh, d)).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v)
        return o.reshape(b, -1) @ self.w["wo"]

    def _mla_decode(self, x, cache):
        """MLA decode with absorbed up-projections: all heads attend to the shared latent."""
        torch, F, s, b = self.torch, self.torch.nn.functional, self.spec, x.shape[0]
        nope, rope, r = s.qk_nope_head_dim, s.qk_rope_head_dim, s.kv_lora_rank
        h = F.rms_norm(x, (x.shape[-1],))
        q = h @ self.w["wq"]
        if s.q_lora_rank:
            q = F.rms_norm(q, (q.shape[-1],)) @ self.w["wq_b"]
        q = q.view(b, s.num_heads, nope + rope)
        wkv_b = self.w["wkv_b"].view(r, s.num_heads, nope + s.v_head_dim)
        q_lat = torch.einsum("bhn,rhn->bhr", q[..., :nope], wkv_b[..., :nope])
        qf = torch.cat([q_lat, q[..., nope:]], dim=-1).unsqueeze(1)  # (b, 1, heads, r + rope)
        kv = cache.unsqueeze(1)  # (b, 1, context, r + rope): one latent shared by all heads
        o_lat = F.scaled_dot_product_attention(qf, kv, kv)[..., :r].squeeze(1)
        o = torch.einsum("bhr,rhv->bhv", o_lat, wkv_b[..., nope:])
        return o.reshape(b, -1) @ self.w["wo"]
