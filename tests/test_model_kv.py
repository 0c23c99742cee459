"""Exact KV / weight / FLOP numbers of the bundled model presets, hand-computed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvplan.errors import InputError, KvplanError
from kvplan.model.flops import attended_pairs, decode_flops, matmul_flops_per_token, prefill_flops
from kvplan.model.kv import (
    Retention,
    kv_bytes_for_context,
    kv_bytes_per_token,
    kv_bytes_retained,
    param_count,
    weight_bytes,
)
from kvplan.model.spec import list_models, load_model


def test_llama_8b_bf16_bytes_per_token():
    assert kv_bytes_per_token(load_model("llama-3.1-8b")) == 32 * 8 * 128 * 2 * 2 == 131_072


def test_llama_70b_bf16_bytes_per_token():
    assert kv_bytes_per_token(load_model("llama-3.1-70b")) == 80 * 8 * 128 * 2 * 2 == 327_680


def test_deepseek_v2_mla_bytes_per_token():
    assert kv_bytes_per_token(load_model("deepseek-v2")) == 60 * (512 + 64) * 2 == 69_120


def test_deepseek_v2_claim_of_93_3_percent():
    """The paper's 93.3 % holds against DeepSeek 67B (GQA, bf16) only with V2's KV stored at
    ~6 bits per element as deployed; bf16 against bf16 it is 82.2 % (docs/models.md)."""
    base = kv_bytes_per_token(load_model("deepseek-llm-67b"))
    assert base == 95 * 8 * 128 * 2 * 2 == 389_120
    v2 = load_model("deepseek-v2")
    assert 1 - kv_bytes_per_token(v2) / base == pytest.approx(0.8224, abs=1e-4)
    six_bit = 60 * 576 * 6 / 8
    assert 1 - six_bit / base == pytest.approx(0.933, abs=5e-4)
    mha = 60 * 2 * 128 * 128 * 2
    assert 1 - kv_bytes_per_token(v2) / mha == pytest.approx(0.9824, abs=1e-4)


@pytest.mark.parametrize("name", ["llama-3.1-8b", "llama-3.1-70b", "deepseek-v2", "gemma-2-27b"])
def test_fp8_halves_bf16(name):
    spec = load_model(name)
    assert kv_bytes_per_token(spec, "fp8") * 2 == kv_bytes_per_token(spec, "bf16")


def test_kivi_int4_int2_include_group_scales():
    spec = load_model("llama-3.1-8b")
    elements = 32 * 2 * 8 * 128
    assert kv_bytes_per_token(spec, "int4") == elements * 5 // 8 == 40_960
    assert kv_bytes_per_token(spec, "int2") == elements * 3 // 8 == 24_576


def test_unknown_kv_dtype_lists_valid_ones():
    with pytest.raises(KvplanError, match="bf16, fp16, fp8, int4, int2"):
        kv_bytes_per_token(load_model("llama-3.1-8b"), "int3")


def test_gemma2_window_caps_half_the_layers():
    spec = load_model("gemma-2-27b")
    per_layer = 2 * 16 * 128 * 2
    assert kv_bytes_for_context(spec, 4096) == 46 * 4096 * per_layer
    assert kv_bytes_for_context(spec, 8192) == (23 * 8192 + 23 * 4096) * per_layer == 2_315_255_808
    assert kv_bytes_per_token(spec) * 8192 > kv_bytes_for_context(spec, 8192)


def test_window_only_model_stops_growing():
    spec = load_model("mistral-7b-v0.1")
    assert kv_bytes_for_context(spec, 4096) == kv_bytes_for_context(spec, 100_000)
    assert kv_bytes_for_context(spec, 4096) == 4096 * 131_072


def test_context_bytes_accept_arrays():
    import numpy as np

    spec = load_model("gemma-2-27b")
    n = np.array([0, 100, 4096, 8192])
    assert list(kv_bytes_for_context(spec, n)) == [kv_bytes_for_context(spec, int(x)) for x in n]


def test_retention_what_ifs():
    spec = load_model("llama-3.1-8b")
    sink = Retention(sink_tokens=4, window_tokens=2044)
    assert sink.kept_tokens(10_000) == 2048 and sink.kept_tokens(100) == 100
    assert kv_bytes_retained(spec, 10_000, sink) == 2048 * 131_072
    assert Retention(keep_frac=0.2).kept_tokens(10_000) == 2000


def test_param_counts_match_published_sizes():
    assert param_count(load_model("llama-3.1-8b")) == 8_030_261_248
    assert param_count(load_model("llama-3.1-70b")) == 70_553_706_496
    assert round(param_count(load_model("mixtral-8x7b")) / 1e9, 1) == 46.7
    assert round(param_count(load_model("mixtral-8x7b"), active=True) / 1e9, 1) == 12.9
    assert round(param_count(load_model("deepseek-v2")) / 1e9) == 236
    assert round(param_count(load_model("deepseek-v2"), active=True) / 1e9) == 21
    assert round(param_count(load_model("deepseek-v3")) / 1e9) == 671
    assert round(param_count(load_model("deepseek-v3"), active=True) / 1e9) == 38


def test_weight_bytes_follow_dtype():
    assert weight_bytes(load_model("llama-3.1-70b")) == 2 * 70_553_706_496
    v3 = load_model("deepseek-v3")
    assert weight_bytes(v3) == param_count(v3)  # fp8 checkpoint


def test_flops_per_token():
    spec = load_model("llama-3.1-8b")
    assert matmul_flops_per_token(spec) == 2 * (8_030_261_248 - 128_256 * 4096)
    per_pair = 32 * 2 * 32 * 256
    assert decode_flops(spec, 4096) == matmul_flops_per_token(spec) + 4096 * per_pair
    assert prefill_flops(spec, 3, 2) == 3 * matmul_flops_per_token(spec) + 12 * per_pair


@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 3000))
def test_attended_pairs_match_brute_force(c, p, w):
    brute = sum(min(i + 1, w) if w else i + 1 for i in range(p, p + c))
    assert attended_pairs(c, p, w) == brute


@given(st.sampled_from(["llama-3.1-8b", "gemma-2-27b", "mistral-7b-v0.1", "deepseek-v2"]),
       st.integers(0, 200_000), st.integers(0, 200_000))
def test_context_bytes_monotone_and_bounded(name, a, b):
    spec = load_model(name)
    lo, hi = sorted((a, b))
    assert kv_bytes_for_context(spec, lo) <= kv_bytes_for_context(spec, hi)
    assert kv_bytes_for_context(spec, hi) <= hi * kv_bytes_per_token(spec)


def test_every_preset_loads():
    names = list_models()
    assert {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "qwen2.5-7b", "qwen2.5-72b",
            "mistral-7b", "mixtral-8x7b", "deepseek-v2", "deepseek-v3", "gemma-2-27b"} <= set(names)
    for name in names:
        assert kv_bytes_per_token(load_model(name)) > 0


def test_user_config_json(tmp_path):
    cfg = {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
           "hidden_size": 64, "intermediate_size": 128, "vocab_size": 100}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = load_model(str(tmp_path))
    assert kv_bytes_per_token(spec) == 2 * 1 * 16 * 2 * 2


def test_bad_config_names_file_and_field(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"num_hidden_layers": 2, "num_attention_heads": "four"}))
    with pytest.raises(InputError, match=r"config.json: field 'num_attention_heads': expected"):
        load_model(str(path))
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_model(str(path))


def test_unknown_model_lists_presets():
    with pytest.raises(KvplanError, match="llama-3.1-8b"):
        load_model("gpt-5")


def _moe_config(**over):
    cfg = {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
           "intermediate_size": 1024, "vocab_size": 1000}
    return {**cfg, **over}


def test_qwen3_moe_keys_are_read_not_a_silent_dense_model():
    from kvplan.model.spec import load_model

    spec = load_model("qwen3-30b-a3b")
    assert (spec.num_experts, spec.experts_per_token, spec.moe_intermediate_size) == (128, 8, 768)
    assert spec.moe_layers == 48 and round(param_count(spec) / 1e9, 1) == 30.5
    assert round(param_count(spec, active=True) / 1e9, 2) == 3.35  # "A3B": 3.3 B active


def test_moe_families_layer_placement_and_shared_experts():
    from kvplan.model.spec import spec_from_config

    qwen2 = spec_from_config(_moe_config(model_type="qwen2_moe", num_experts=8,
                                         num_experts_per_tok=2, moe_intermediate_size=128,
                                         shared_expert_intermediate_size=512,
                                         decoder_sparse_step=2, mlp_only_layers=[3]), name="q",
                             path="q.json")
    assert qwen2.dense_layers == (0, 2, 3) and qwen2.moe_layers == 1   # MoE at (i + 1) % 2 == 0
    assert qwen2.shared_intermediate_size == 512
    ds = spec_from_config(_moe_config(n_routed_experts=16, n_shared_experts=2,
                                      num_experts_per_tok=4, moe_intermediate_size=64,
                                      first_k_dense_replace=1), name="d", path="d.json")
    assert ds.dense_layers == (0,) and ds.shared_intermediate_size == 128
    mixtral = spec_from_config(_moe_config(num_local_experts=8, num_experts_per_tok=2),
                               name="m", path="m.json")
    assert mixtral.moe_intermediate_size == 1024 and mixtral.moe_layers == 4


def test_gpt_oss_experts_are_mxfp4():
    from kvplan.model.spec import load_model

    spec = load_model("gpt-oss-120b")
    assert spec.expert_bytes_per_param == 4.25 / 8 and spec.windows[:2] == (128, 0)
    experts = 36 * 128 * 3 * 2880 * 2880
    assert weight_bytes(spec) == round((param_count(spec) - experts) * 2 + experts * 4.25 / 8)


@pytest.mark.parametrize("over, field", [
    ({"num_experts_per_tok": 2, "moe_intermediate_size": 128}, "num_experts_per_tok"),
    ({"num_experts": 8}, "num_experts"),
    ({"model_type": "qwen3_moe"}, "model_type"),
    ({"num_local_experts": 4, "num_experts_per_tok": 8}, "num_experts_per_tok"),
])
def test_moe_looking_config_that_cannot_be_read_is_an_error(over, field):
    from kvplan.errors import InputError
    from kvplan.model.spec import spec_from_config

    with pytest.raises(InputError, match=f"field '{field}'"):
        spec_from_config(_moe_config(**over), name="x", path="x.json")
