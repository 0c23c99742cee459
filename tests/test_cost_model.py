"""Cost model: every part of a step against hand arithmetic, layouts, and the laws it keeps.

The hand-computed tests use a toy accelerator with round numbers (10 TFLOP/s bf16, 100 GB/s
HBM, every efficiency 0.5, no launch costs, 1 ms overhead, a 100 GB/s GPU link) and a toy
2-layer model (hidden 1,024, 8 heads of 128, 8 KV heads, MLP 4,096, vocabulary 32,000).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvplan.cost.layout import Layout
from kvplan.cost.model import CostModel, activation_reserve, attn_pairs, weights_per_gpu
from kvplan.cost.tables import Table
from kvplan.errors import KvplanError
from kvplan.hardware.profile import Curve, Grid, OpsSpec, load_profile
from kvplan.model.spec import ModelSpec, load_model

GIB = 1 << 30
H100 = load_profile("h100-sxm")
LLAMA8 = load_model("llama-3.1-8b")
CM8 = CostModel.build(LLAMA8, H100)
_BASE = load_profile("cpu-test")
TOY_HW = dataclasses.replace(
    _BASE, gpu=dataclasses.replace(_BASE.gpu, count=2, nvlink_gbps=100.0, hbm_gib=80.0),
    ops=OpsSpec(gemm_launch_us=0.0, attn_prefill_frac=0.5, attn_prefill_half_tokens=1000.0,
                attn_prefill_extra_us=0.0, attn_decode_frac=0.5, attn_decode_launch_us=0.0,
                elementwise_frac=0.5, elementwise_launch_us=0.0, overhead_per_seq_us=0.0,
                comm_frac=0.5, comm_latency_us=0.0))
TOY = ModelSpec(name="toy", num_layers=2, hidden_size=1024, num_heads=8, num_kv_heads=8,
                head_dim=128, intermediate_size=4096, vocab_size=32000, tie_word_embeddings=False)
TOY_MOE = dataclasses.replace(TOY, name="toy-moe", num_experts=4, experts_per_token=2,
                              moe_intermediate_size=1024)
FLOPS, BW = 10e12 * 0.5, 100e9 * 0.5
"""The toy GPU's achieved FLOP/s and bytes/s (every efficiency 0.5)."""


def gemm_by_hand(m: float, n: float, k: float) -> float:
    """max(2mnk / F, (mk + mn + nk) x 2 B / B): the datasheet form with no launch."""
    return max(2 * m * n * k / FLOPS, (m * k + m * n + n * k) * 2 / BW)


def toy(layout: Layout | None = None, spec: ModelSpec = TOY) -> CostModel:
    return CostModel.build(spec, TOY_HW, layout=layout or Layout())


def test_attn_pairs():
    assert attn_pairs(3, 2) == 3 + 4 + 5
    assert attn_pairs(4096, 0) == 4096 * 4097 // 2
    assert list(attn_pairs(np.array([1, 3]), np.array([0, 2]))) == [1, 12]


def test_weight_gemms_vs_tokens_by_hand():
    """1,000 tokens: qkv 3,072 x 1,024, o 1,024 x 1,024, gate/up 8,192 x 1,024, down
    1,024 x 4,096, each compute-bound, twice (2 layers): e.g. qkv 2 x 1,000 x 3,072 x 1,024 /
    5e12 = 1.2583 ms."""
    parts = toy().step_parts(1000, attn_pairs(1000, 0), 0, 0)
    per_layer = sum(gemm_by_hand(1000, n, k) for n, k in
                    ((3072, 1024), (1024, 1024), (8192, 1024), (1024, 4096)))
    assert gemm_by_hand(1000, 3072, 1024) == pytest.approx(1.2583e-3, rel=1e-4)
    assert parts["gemm"] == pytest.approx(2 * per_layer, rel=1e-9)
    # one token: every weight is streamed once, memory-bound
    one = toy().step_parts(0, 0, 1, 100)["gemm"]
    assert one == pytest.approx(2 * sum((k + n + n * k) * 2 / BW for n, k in
                                        ((3072, 1024), (1024, 1024), (8192, 1024),
                                         (1024, 4096))), rel=1e-9)


def test_lm_head_only_for_sampled_tokens():
    """A 1,000-token prefill samples one token: LM head = one 32,000 x 1,024 GEMV,
    (1,024 + 32,000 + 32,768,000) x 2 B / 50 GB/s = 1.3120 ms; 8 decodes sample 8."""
    cm = toy()
    assert cm.step_parts(1000, attn_pairs(1000, 0), 0, 0)["lm_head"] == pytest.approx(
        gemm_by_hand(1, 32000, 1024), rel=1e-9)
    assert gemm_by_hand(1, 32000, 1024) == pytest.approx(1.31203e-3, rel=1e-5)
    assert cm.step_parts(0, 0, 8, 8000)["lm_head"] == pytest.approx(gemm_by_hand(8, 32000, 1024),
                                                                    rel=1e-9)


def test_prefill_attention_by_hand():
    """1,000 new tokens from scratch: 500,500 pairs x 2 x 8 heads x 256 FLOPs x 2 layers at
    10 x 0.5 x 1,000 / (1,000 + 1,000) = 2.5 TFLOP/s = 1.6400 ms (the table samples the form
    at 32 points per octave: within 0.01 %)."""
    parts = toy().step_parts(1000, attn_pairs(1000, 0), 0, 0)
    assert parts["attn_prefill"] == pytest.approx(500_500 * 4096 * 2 / 2.5e12, rel=1e-4)
    assert parts["attn_prefill"] == pytest.approx(1.6400e-3, rel=1e-4)


def test_decode_attention_by_kv_bytes_read():
    """8 sequences x 1,000 tokens x 4,096 B per token and layer = 32.8 MB per layer at
    50 GB/s = 0.65536 ms, x 2 layers."""
    parts = toy().step_parts(0, 0, 8, 8000)
    assert parts["attn_decode"] == pytest.approx(2 * 8 * 1000 * 4096 / BW, rel=1e-9)


def test_elementwise_and_overhead_by_hand():
    """Per layer and token: 2 norms x (2h + 2h) x 2 B + activation (2 x 4,096 + 4,096) x 2 B
    = 16,384 + 24,576 B; 1,000 tokens x 2 layers / 50 GB/s = 1.6384 ms; overhead 1 ms."""
    parts = toy().step_parts(1000, attn_pairs(1000, 0), 0, 0)
    assert parts["elementwise"] == pytest.approx(2 * 1000 * (16384 + 24576) / BW, rel=1e-9)
    assert parts["overhead"] == pytest.approx(1e-3)
    assert parts["tp_allreduce"] == parts["ep_alltoall"] == parts["experts"] == 0.0


def test_overhead_grows_with_running_sequences():
    hw = dataclasses.replace(TOY_HW, ops=dataclasses.replace(TOY_HW.ops, overhead_per_seq_us=10.0))
    cm = CostModel.build(TOY, hw)
    assert cm.step_parts(0, 0, 64, 64_000)["overhead"] == pytest.approx(1e-3 + 64 * 10e-6)
    assert cm.step_parts(100, 5050, 64, 64_000)["overhead"] == pytest.approx(1e-3 + 65 * 10e-6)


def test_tp2_step_with_its_all_reduce():
    """tp 2: each GPU runs half the heads and MLP columns (qkv 1,536 x 1,024, o 1,024 x 512,
    gate/up 4,096 x 1,024, down 1,024 x 2,048) and 2 all-reduces per layer + 1 of
    1,000 x 1,024 x 2 B = 2.048 MB, ring: 2 x (1/2) x 2.048 MB / (100 GB/s x 0.5) = 40.96 us
    each, 5 in all = 204.8 us."""
    cm = toy(Layout(tp=2))
    parts = cm.step_parts(1000, attn_pairs(1000, 0), 0, 0)
    per_layer = sum(gemm_by_hand(1000, n, k) for n, k in
                    ((1536, 1024), (1024, 512), (4096, 1024), (1024, 2048)))
    assert parts["gemm"] == pytest.approx(2 * per_layer, rel=1e-9)
    assert parts["tp_allreduce"] == pytest.approx(5 * 40.96e-6, rel=1e-9)
    assert parts["attn_prefill"] == pytest.approx(500_500 * 2 * 4 * 256 * 2 / 2.5e12, rel=1e-4)
    assert parts["lm_head"] == pytest.approx(gemm_by_hand(1, 16000, 1024), rel=1e-9)
    assert sum(parts.values()) == pytest.approx(
        cm.step_time_s(1000, attn_pairs(1000, 0), 0, 0), rel=1e-12)


def test_moe_step_under_ep2():
    """4 experts, top-2, width 1,024, tp 2 x ep 2: each GPU holds 2 whole experts. 4 tokens:
    2 x (1 - (1 - 2/4)^4) = 1.875 local experts touched by 4 x 2 / 2 = 4 assignments
    (2.133 tokens each); each expert runs gate/up (2,048 x 1,024) and down (1,024 x 1,024).
    All-to-all: 4 / 2 tokens x 2 copies x 2 KiB each way, half leaves the GPU."""
    cm = toy(Layout(tp=2, ep=2), TOY_MOE)
    parts = cm.step_parts(0, 0, 4, 4000)
    m = 4 / 1.875
    per_expert = gemm_by_hand(m, 2048, 1024) + gemm_by_hand(m, 1024, 1024)
    assert parts["experts"] == pytest.approx(2 * 1.875 * per_expert, rel=1e-9)
    dispatch = 4 / 2 * 2 * 1024 * 2
    assert parts["ep_alltoall"] == pytest.approx(2 * 2 * 0.5 * dispatch / BW, rel=1e-9)
    assert cm.weight_bytes_per_gpu == weights_per_gpu(TOY_MOE, Layout(tp=2, ep=2))
    experts = 2 * 4 * 3 * 1024 * 1024
    rest = (2 * 32000 * 1024 + 2 * (4 * 1024 * 1024 + 4 * 1024 + 2 * 1024) + 1024) * 2
    assert cm.weight_bytes_per_gpu == round(rest / 2 + experts * 2 / 2)


def test_expert_imbalance_scales_the_busiest_gpu():
    even = toy(Layout(tp=2, ep=2), TOY_MOE).step_parts(0, 0, 64, 64_000)["experts"]
    skew = toy(Layout(tp=2, ep=2, expert_imbalance=1.5), TOY_MOE).step_parts(
        0, 0, 64, 64_000)["experts"]
    assert even < skew < 1.5 * even + 1e-12


def test_moe_reads_only_the_experts_a_batch_touches():
    """ep 1 (TP-sliced experts): one token touches 2 of 4 experts, a large batch all 4."""
    cm = toy(Layout(tp=1), TOY_MOE)
    one = cm.step_parts(0, 0, 1, 100)["experts"]
    assert one == pytest.approx(2 * 2 * (gemm_by_hand(1, 2048, 1024)
                                         + gemm_by_hand(1, 1024, 1024)), rel=1e-9)
    assert cm.step_parts(0, 0, 256, 25_600)["experts"] > 1.9 * one


def test_layout_errors_name_why():
    with pytest.raises(KvplanError, match="needs 4 GPUs in one node; cpu-test has 2"):
        toy(Layout(tp=4))
    with pytest.raises(KvplanError, match="does not divide the 32 attention heads"):
        CostModel.build(LLAMA8, H100, layout=Layout(tp=3))
    with pytest.raises(KvplanError, match="has no experts"):
        CostModel.build(LLAMA8, H100, layout=Layout(tp=2, ep=2))
    with pytest.raises(KvplanError, match="multiple of --tp 2"):
        toy(Layout(tp=2, dp=1, ep=4), TOY_MOE)
    with pytest.raises(KvplanError, match="--dp must be >= 1"):
        toy(Layout(dp=0))


def test_decode_step_llama8b_datasheet_h100_worked_example():
    """docs/cost-model.md: 64 x 4,096 decode on one H100 (datasheet, fitted efficiencies)."""
    parts = CM8.step_parts(0, 0, 64, 64 * 4096)
    kv_layer = 64 * 4096 * 4096
    ops = H100.ops
    attn = 32 * (ops.attn_decode_launch_us * 1e-6 + kv_layer / (3350e9 * ops.attn_decode_frac))
    assert parts["attn_decode"] == pytest.approx(attn, rel=1e-9)
    assert sum(parts.values()) == pytest.approx(CM8.step_time_s(0, 0, 64, 64 * 4096), rel=1e-12)
    assert 0.015 < CM8.step_time_s(0, 0, 64, 64 * 4096) < 0.025


def test_hbm_capacity_after_weights_and_reserve():
    reserve = activation_reserve(LLAMA8, H100)
    assert reserve == 9_421_885_277  # the docstring's worked example
    assert reserve == int(np.ceil(0.1 * 79.65 * GIB)) + 8192 * (4 * 4096 + 2 * 14336) * 2 \
        + 256 * 128_256 * 4
    assert CM8.hbm_kv_capacity_bytes() == int(79.65 * GIB - reserve - 16_060_522_496)
    assert CM8.hbm_kv_capacity_bytes(10.0) == 10 * GIB


def test_kv_replicated_beyond_the_kv_heads_and_for_mla():
    """tp 16 > 8 KV heads: each GPU stores 1 of 8 heads, capacity in whole tokens = per-GPU
    free bytes x 8; MLA keeps the whole latent on every GPU (capacity does not grow with tp)."""
    v2 = load_model("deepseek-v2")
    b200 = load_profile("b200")
    four, eight = (CostModel.build(v2, b200, tp=t) for t in (4, 8))
    free = [b200.gpu.hbm_gib * GIB - c.activation_reserve_bytes - c.weight_bytes_per_gpu
            for c in (four, eight)]
    assert four.hbm_kv_capacity_bytes() == int(free[0])
    assert eight.hbm_kv_capacity_bytes() == int(free[1])


def test_70b_needs_tensor_parallel_on_h100():
    cm = CostModel.build(load_model("llama-3.1-70b"), H100)
    assert cm.tp == 4
    with pytest.raises(KvplanError, match="no KV room"):
        CostModel.build(load_model("llama-3.1-70b"), H100, tp=1).hbm_kv_capacity_bytes()


def test_405b_bf16_does_not_fit_one_h100_node():
    with pytest.raises(KvplanError, match="do not fit"):
        CostModel.build(load_model("llama-3.1-405b"), H100)


def test_transfer_time_default_curve():
    link = H100.link("h2d")
    n = 1 << 20
    expected = 10e-6 + n / (53e9 * n / (n + 65536))
    assert CM8.transfer_time_s("h2d", n) == pytest.approx(expected, rel=1e-12)
    assert CM8.transfer_time_s("h2d", 0) == 0.0
    assert link.bandwidth_gbps(65536) == pytest.approx(26.5)
    two_hop = CM8.transfer_time_s("ssd_read", n) + CM8.transfer_time_s("h2d", n)
    assert CM8.transfer_time_s("ssd_to_hbm", n) == pytest.approx(two_hop)


def test_arrays_broadcast_like_scalars_to_the_last_bit():
    seqs = np.array([0, 1, 8, 64])
    ctx = seqs * 1000
    times = CM8.step_time_s(0, 0, seqs, ctx)
    assert times[0] == 0.0
    assert list(times) == [CM8.step_time_s(0, 0, int(s), int(c))
                           for s, c in zip(seqs, ctx, strict=True)]
    pt = np.array([0, 100, 2048])
    mixed = CM8.step_time_s(pt, attn_pairs(pt, 50), 3, 3000)
    assert list(mixed) == [CM8.step_time_s(int(p), int(attn_pairs(p, 50)), 3, 3000) for p in pt]


def test_table_scalar_path_equals_numpy_interp():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.random(50) + 0.1)
    t = Table(x, rng.random(50))
    q = np.concatenate([rng.random(200) * x[-1] * 1.5, x])
    assert list(t(q)) == [t(float(v)) for v in q]


@given(st.integers(0, 256), st.integers(0, 256), st.integers(1, 100_000), st.integers(0, 5000))
def test_step_time_monotone_in_batch_and_context(s1, s2, ctx, prefill):
    lo, hi = sorted((s1, s2))
    pairs = attn_pairs(prefill, 0)
    assert CM8.step_time_s(prefill, pairs, lo, lo * ctx) <= CM8.step_time_s(prefill, pairs, hi,
                                                                           hi * ctx)
    assert CM8.step_time_s(prefill, pairs, hi, hi * ctx) <= CM8.step_time_s(prefill, pairs, hi,
                                                                           hi * (ctx + 1))


@given(st.integers(1, 1 << 34), st.integers(1, 1 << 34),
       st.sampled_from(["h2d", "d2h", "ssd_read", "ssd_write", "ssd_to_hbm"]))
def test_transfer_time_monotone(a, b, link):
    lo, hi = sorted((a, b))
    assert CM8.transfer_time_s(link, lo) <= CM8.transfer_time_s(link, hi)


def test_unknown_link():
    with pytest.raises(KvplanError, match="h2d, d2h, ssd_read, ssd_write"):
        CM8.transfer_time_s("nvme", 10)


def _cumulative_reference(cm, seqs, ctx0, horizon_s, max_iters):
    """The engine's former way: one array call, cumsum, first cumulative time >= horizon."""
    cum = np.cumsum(cm.step_time_s(0, 0, seqs, ctx0 + seqs * np.arange(max_iters)))
    k = min(int(np.searchsorted(cum, horizon_s)) + 1, max_iters)
    return k, float(cum[k - 1])


_RUN_MODELS = {name: CostModel.build(load_model(name), load_profile("h100-sxm"), tp=tp)
               for name, tp in (("llama-3.1-8b", 1), ("gemma-2-27b", 1), ("mixtral-8x7b", 2))}


@given(st.sampled_from(sorted(_RUN_MODELS)), st.integers(1, 256), st.integers(1, 20_000),
       st.integers(1, 300), st.one_of(st.floats(0.0, 5.0), st.just(float("inf"))))
def test_decode_run_equals_summing_iterations_to_the_last_bit(name, seqs, ctx, iters, horizon):
    cm = _RUN_MODELS[name]
    assert cm.decode_run_s(seqs, seqs * ctx, horizon, iters) == \
        _cumulative_reference(cm, seqs, seqs * ctx, horizon, iters)


def _measured(profile):
    """h100-sxm with measured gemm, prefill-attention and decode-attention curves."""
    return dataclasses.replace(profile, kind="calibrated", curves={
        "gemm": Grid((1.0, 8192.0), (2.0**20, 2.0**30), ((0.3, 0.7), (0.8, 0.8))),
        "attn_prefill": Grid((128.0, 16384.0), (8.0, 64.0), ((50.0, 500.0), (100.0, 600.0))),
        "attn_decode": Curve((1e6, 1e10), (1000.0, 3000.0))},
        provenance={"run": "test", "date": "2026-01-01"})


def test_decode_run_on_a_measured_profile_uses_its_curves():
    cm = CostModel.build(LLAMA8, _measured(H100))
    for horizon in (0.05, 1.0, float("inf")):
        assert cm.decode_run_s(64, 64 * 3000, horizon, 100) == \
            _cumulative_reference(cm, 64, 64 * 3000, horizon, 100)
    assert cm.decode_run_s(64, 64 * 3000, 0.0, 100) == (1, cm.step_time_s(0, 0, 64, 64 * 3000))
    assert cm.step_time_s(0, 0, 64, 64 * 3000) != CM8.step_time_s(0, 0, 64, 64 * 3000)


def test_measured_curves_set_the_ranges_that_flag_extrapolation():
    cm = CostModel.build(LLAMA8, _measured(H100))
    assert cm.coverage_ranges() == ((1.0, 8192.0, 1.0), (0.0, 1e10, 1.0))
    assert cm.step_covered(0, 64, 64 * 4096)
    assert not cm.step_covered(16384, 0, 0)          # 16,384 tokens > 8,192 measured
    assert not cm.step_covered(0, 64, 64 * 100_000)  # 26 GB of KV per layer > 10 GB
    assert CM8.coverage_ranges() == (None, None) and CM8.step_covered(1 << 20, 1, 1 << 30)


def test_free_parameters_and_replacing_them():
    from kvplan.cost.params import Parameter, free_parameters, with_parameters

    free = free_parameters(H100)
    assert free["gpu.step_overhead_us"].value == 500.0
    assert set(free) >= {"gpu.compute_efficiency_frac", "ops.attn_decode_frac",
                         "ops.overhead_per_seq_us"}
    fitted = with_parameters(H100, {"gpu.step_overhead_us": 900.0,
                                    "ops.overhead_per_seq_us": 10.0}, source="test fit")
    cm = CostModel.build(LLAMA8, fitted)
    assert cm.step_parts(0, 0, 10, 10_000)["overhead"] == pytest.approx(900e-6 + 10 * 10e-6)
    assert fitted.sources["gpu.step_overhead_us"] == "test fit"
    measured = free_parameters(_measured(H100))
    assert "gpu.compute_efficiency_frac" not in measured   # the gemm curve replaces it
    assert "gpu.step_overhead_us" in measured
    assert measured["curves.gemm.scale"] == Parameter(1.0, 0.1, 10.0, "compute")
    assert free["ops.attn_decode_launch_us"].group == "fixed"
    doubled = with_parameters(_measured(H100), {"curves.gemm.scale": 2.0}, source="test fit")
    assert np.allclose(np.asarray(doubled.curves["gemm"].z),
                       2 * np.asarray(_measured(H100).curves["gemm"].z))
    assert "curves.gemm.scale" not in doubled.sources       # not a field: provenance says it
    with pytest.raises(KvplanError, match="not a free constant"):
        with_parameters(_measured(H100), {"gpu.compute_efficiency_frac": 0.9})
    with pytest.raises(KvplanError, match="outside"):
        with_parameters(H100, {"ops.attn_decode_frac": 1.5})


def test_docstring_worked_examples_of_the_h100_forms():
    ops = CM8.steps.ops
    assert float(ops.gemm_s(1, 28672, 4096)) * 1e6 == pytest.approx(86.5, abs=0.05)
    assert float(ops.gemm_s(64, 28672, 4096)) * 1e6 == pytest.approx(87.9, abs=0.05)
    assert float(ops.attn_prefill_tflops(2048, 32)) == pytest.approx(449.2, abs=0.05)
    assert float(ops.attn_decode_s(1 << 30)) * 1e6 == pytest.approx(381.1, abs=0.05)
    assert float(ops.allreduce_s(8 << 20, 2)) * 1e6 == pytest.approx(32.9, abs=0.05)
    parts = CM8.step_parts(0, 0, 64, 64 * 4096)
    assert {k: round(v * 1e6, 1) for k, v in parts.items() if v} == {
        "gemm": 5503.5, "elementwise": 403.8, "lm_head": 379.2, "attn_decode": 12195.6,
        "overhead": 500.0}
