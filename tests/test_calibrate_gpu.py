"""Calibration on a real GPU (skipped cleanly without CUDA) and the layer on the CPU."""

from __future__ import annotations

import dataclasses

import pytest

from kvplan.calibrate.compute import RandomLayer, ffn_width
from kvplan.model.spec import load_model


def _tiny(name: str):
    s = load_model(name)
    return dataclasses.replace(
        s, hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_heads=4,
        num_kv_heads=4 if s.is_mla else 2, head_dim=16, q_lora_rank=min(s.q_lora_rank, 32),
        kv_lora_rank=min(s.kv_lora_rank, 32), qk_nope_head_dim=min(s.qk_nope_head_dim, 16),
        qk_rope_head_dim=min(s.qk_rope_head_dim, 8), v_head_dim=min(s.v_head_dim, 16))


@pytest.mark.parametrize("name", ["llama-3.1-8b", "deepseek-v2", "mixtral-8x7b"])
def test_random_layer_runs_on_cpu_with_exact_work(name):
    pytest.importorskip("torch")
    spec = _tiny(name)
    layer = RandomLayer(spec, "cpu", seed=0)
    pre, dec = layer.prefill_op(32), layer.decode_op(3, 40)
    assert tuple(pre.fn().shape) == (32, 64) and tuple(dec.fn().shape) == (3, 64)
    assert dec.bytes_read == layer.weight_bytes + 3 * 40 * layer.kv_width * 2
    if name == "llama-3.1-8b":   # GQA: qkv 64x(4+2*2)*16, o 64x64, mlp 3 x 64x128
        params = 64 * 128 + 64 * 64 + 64 * 256 + 128 * 64
        assert layer.weight_bytes == 2 * params
        assert pre.flops == 2 * 32 * params + 2 * 4 * (16 + 16) * (32 * 33 / 2)
        assert dec.flops == 2 * 3 * params + 4 * 4 * 16 * 3 * 40
    if name == "mixtral-8x7b":
        assert ffn_width(spec) == 2 * 32


@pytest.mark.gpu
def test_quick_gpu_calibration_writes_calibrated_profile(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from kvplan.calibrate.run import CalibrateConfig, run_calibration
    from kvplan.hardware.profile import load_profile

    res = run_calibration(CalibrateConfig(mode="quick", only=("links", "hbm", "kvcopy", "compute"),
                                          out_dir=tmp_path, max_gpu_mem_frac=0.5), say=lambda _: None)
    prof = load_profile(str(res.profile_path))
    assert {"h2d", "d2h", "hbm", "compute"} <= set(prof.curves)
    assert 1 < prof.host_link.h2d_achieved_gbps < 1000
