"""Cost model against hand-computed rooflines, plus monotonicity laws."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvplan.cost.model import CostModel, activation_reserve, attn_pairs
from kvplan.errors import KvplanError
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model
from kvplan.units import GIB

H100 = load_profile("h100-sxm")
LLAMA8 = load_model("llama-3.1-8b")
CM8 = CostModel.build(LLAMA8, H100)


def test_attn_pairs():
    assert attn_pairs(3, 2) == 3 + 4 + 5
    assert attn_pairs(4096, 0) == 4096 * 4097 // 2
    assert list(attn_pairs(np.array([1, 3]), np.array([0, 2]))) == [1, 12]


def test_decode_step_llama8b_batch64_4k_on_h100():
    """64 sequences x 4,096 context: every weight but the input embedding plus all their KV
    is read once; decode is memory-bound on both rooflines."""
    weights_read = (8_030_261_248 - 128_256 * 4096) * 2
    kv_read = 64 * 4096 * 131_072
    bandwidth = 3350e9 * 0.8
    expected = (weights_read + kv_read) / bandwidth + 500e-6
    assert CM8.step_time_s(0, 0, 64, 64 * 4096) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.018921, abs=1e-6)


def test_prefill_is_compute_bound():
    flops = 4096 * CM8.matmul_flops_per_token + attn_pairs(4096, 0) * 32 * 2 * 32 * 256
    expected = flops / (989e12 * 0.6) + 500e-6
    assert CM8.prefill_time_s(4096) == pytest.approx(expected, rel=1e-12)


def test_hbm_capacity_after_weights_and_reserve():
    reserve = activation_reserve(LLAMA8, H100)
    assert reserve == 9_421_885_277  # the docstring's worked example
    assert reserve == int(np.ceil(0.1 * 79.65 * GIB)) + 8192 * (4 * 4096 + 2 * 14336) * 2 \
        + 256 * 128_256 * 4
    assert CM8.hbm_kv_capacity_bytes() == int(79.65 * GIB - reserve - 16_060_522_496)
    assert CM8.hbm_kv_capacity_bytes(10.0) == 10 * GIB


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


def test_arrays_broadcast_like_scalars():
    seqs = np.array([0, 1, 8, 64])
    ctx = seqs * 1000
    times = CM8.step_time_s(0, 0, seqs, ctx)
    assert times[0] == 0.0
    assert list(times) == [CM8.step_time_s(0, 0, int(s), int(c)) for s, c in zip(seqs, ctx, strict=True)]


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


def test_moe_decode_reads_only_touched_experts():
    cm = CostModel.build(load_model("mixtral-8x7b"), H100)
    one, many = cm.step_time_s(0, 0, 1, 100), cm.step_time_s(0, 0, 256, 25_600)
    assert cm._weights_read_bytes(np.array(1.0)) < cm._weights_read_bytes(np.array(256.0))
    assert cm._weights_read_bytes(np.array(1e6)) == pytest.approx(
        cm.dense_read_bytes + 8 * cm.expert_bytes)
    assert one < many


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


def test_decode_run_on_a_calibrated_profile_uses_its_curves():
    import dataclasses

    from kvplan.hardware.profile import Curve

    cal = dataclasses.replace(H100, kind="calibrated", curves={
        "compute": Curve((1.0, 8192.0), (100.0, 700.0)),
        "hbm": Curve((1e6, 1e11), (1000.0, 3000.0))})
    cm = CostModel.build(LLAMA8, cal)
    for horizon in (0.05, 1.0, float("inf")):
        assert cm.decode_run_s(64, 64 * 3000, horizon, 100) == \
            _cumulative_reference(cm, 64, 64 * 3000, horizon, 100)
    assert cm.decode_run_s(64, 64 * 3000, 0.0, 100) == (1, cm.step_time_s(0, 0, 64, 64 * 3000))
