"""`kvplan profiles import llmservingsim` on a hand-made bundle in LLMServingSim's layout.

The bundle's times come from formulas, so every imported figure is known by hand: each weight
GEMM at exactly half its roofline (util 0.5), prefill attention at 50 TFLOP/s, decode attention
at 800 GB/s, one layer's small kernels at 3 x 1 us + bytes / (0.5 x 1,008 GB/s), and the
sampler + embedding + final norm at 25 us + 0.5 us per sequence.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.cost.model import CostModel
from kvplan.errors import InputError, KvplanError
from kvplan.hardware import llmservingsim as lss
from kvplan.hardware.profile import load_profile

CONFIG = {"num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
          "hidden_size": 1024, "intermediate_size": 4096, "vocab_size": 32000}
META = """profiler_version: 1.0.0
vllm_version: 0.19.0
cuda_version: '12.8'
gpu: NVIDIA GeForce RTX 4090
hardware: RTX4090
model: toy/Toy-1B
variant: bf16
tp_degrees: [1]
engine_effective:
  enforce_eager: true
  hf_overrides: {num_hidden_layers: 1, intermediate_size: 4096, num_attention_heads: 8,
                 num_key_value_heads: 2, vocab_size: 32000}
"""
FLOPS, BW = 165.2e12, 1008e9
"""Peaks of the bundled rtx-4090 profile (the base the import takes them from)."""
TOKENS = (1, 16, 256, 2048)
SEQS = (1, 16, 256)


def _gemm_us(m, n, k):
    sol = max(2 * m * n * k / FLOPS, 2 * (m * k + n * k + m * n) / BW)
    return 2 * sol * 1e6


def _rows(header, rows):
    return header + "\n" + "\n".join(",".join(f"{v:.10g}" if isinstance(v, float) else str(v)
                                             for v in r) for r in rows) + "\n"


def write_bundle(folder):
    """The fake bundle (tp1 only) and the toy model's config.json; returns (bundle, model)."""
    h, w, d = 1024, 4096, 128
    shapes = {"qkv_proj": (12 * d, h), "o_proj": (h, 8 * d), "gate_up_proj": (2 * w, h),
              "down_proj": (h, w)}
    rate = 0.5 * BW
    dense = []
    for t in TOKENS:
        dense += [(name, t, _gemm_us(t, n, k)) for name, (n, k) in shapes.items()]
        dense += [("layernorm", t, 1.0 + t * 8 * h / rate * 1e6),
                  ("act_fn", t, 1.0 + t * 6 * w / rate * 1e6),
                  ("embedding", t, 2.0), ("final_layernorm", t, 3.0)]
    per_seq = [("lm_head", n, _gemm_us(n, 32000, h)) for n in SEQS]
    per_seq += [("sampler", n, 20.0 + 0.5 * n) for n in SEQS]
    attn = []
    for c in (16, 128, 1024):
        attn.append((c, 0, 0, 0, 4.0 * 8 * d * c * (c + 1) / 2 / 50e12 * 1e6))
        attn.append((c, 512, 0, 0, 999.0))                       # history: not in the grid
    for n in (1, 8, 64):
        for kv in (255, 4095):
            attn.append((0, 0, n, kv, n * (kv + 1) * 2 * d * 2 * 2 / 800e9 * 1e6))
    attn.append((128, 0, 8, 255, 50.0))                           # mixed: ignored
    bundle = folder / "perf" / "RTX4090" / "toy" / "Toy-1B" / "bf16"
    tp1 = bundle / "tp1"
    tp1.mkdir(parents=True)
    (bundle / "meta.yaml").write_text(META)
    (tp1 / "dense.csv").write_text(_rows("layer,tokens,time_us", dense))
    (tp1 / "per_sequence.csv").write_text(_rows("layer,sequences,time_us", per_seq))
    (tp1 / "attention.csv").write_text(_rows(
        "prefill_chunk,kv_prefill,n_decode,kv_decode,time_us", attn))
    model = folder / "toy"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))
    return bundle, model


@pytest.fixture
def bundle(tmp_path):
    return write_bundle(tmp_path)


def test_import_reduces_the_tables_to_the_cost_models_parts(bundle):
    folder, model = bundle
    b = lss.read_bundle(folder)
    spec = lss.model_of(b, str(model))
    p = lss.import_profile(b, spec, lss.base_profile(b, None), today="2026-01-01")
    assert p.kind == "imported" and p.name == "rtx-4090-lss"
    assert np.allclose(p.curves["gemm"].z, 0.5)
    assert p.curves["gemm"].x == (1.0, 16.0, 256.0, 2048.0)
    assert np.allclose(p.curves["attn_prefill"].z, 50.0)
    assert p.curves["attn_prefill"].x == (16.0, 128.0, 1024.0) and p.curves["attn_prefill"].y == (8.0,)
    assert np.allclose(p.curves["attn_decode"].y, 800.0)
    assert p.ops.elementwise_frac == pytest.approx(0.5, rel=1e-4)
    assert p.ops.elementwise_launch_us == pytest.approx(1.0, abs=2e-3)
    assert p.gpu.step_overhead_us == pytest.approx(25.0, abs=2e-3)
    assert p.ops.overhead_per_seq_us == pytest.approx(0.5, abs=1e-4)
    assert p.ops.attn_prefill_extra_us == 0.0
    assert p.provenance["licence"].startswith("LLMServingSim is MIT-licensed")
    assert "vLLM 0.19.0" in p.provenance["run"]
    assert p.host == load_profile("rtx-4090").host
    cm = CostModel.build(spec, p)
    assert float(cm.steps.ops.gemm_s(16, 4096, 1024)) == pytest.approx(
        _gemm_us(16, 4096, 1024) * 1e-6, rel=1e-9)
    assert cm.step_covered(2048, 0, 0) and not cm.step_covered(4096, 0, 0)


def test_line_fit_by_hand():
    assert lss.line_fit([1.0, 3.0], [3.0, 5.0]) == pytest.approx((2.0, 1.0))
    # slope held at 1.5: a minimises ((a + 1.5) / 3 - 1)^2 + ((a + 4.5) / 5 - 1)^2 -> 42 / 34
    assert lss.line_fit([1.0, 3.0], [3.0, 5.0], min_slope=1.5) == pytest.approx((42 / 34, 1.5))


def test_cli_writes_a_loadable_profile(bundle, tmp_path):
    folder, model = bundle
    out = tmp_path / "lss.toml"
    res = CliRunner().invoke(app, ["profiles", "import", "llmservingsim", str(folder / "tp1"),
                                   "--model", str(model), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["written"][0]["profile"] == "rtx-4090-lss"
    assert load_profile(str(out)).curves["attn_decode"].y[0] == pytest.approx(800.0)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: (f / "tp1" / "dense.csv").unlink(), r"tp1/dense.csv: missing"),
    (lambda f: (f / "tp1" / "attention.csv").write_text("a,b\n1,2\n"),
     r"attention.csv:1: header 'a,b': expected prefill_chunk"),
    (lambda f: (f / "tp1" / "per_sequence.csv").write_text(
        "layer,sequences,time_us\nsampler,1,fast\n"),
     r"per_sequence.csv:2: field 'time_us': 'fast' is not a number"),
    (lambda f: (f / "tp1" / "per_sequence.csv").write_text(
        "layer,sequences,time_us\nsampler,1,-3\n"), r"per_sequence.csv:2: field 'time_us'"),
    (lambda f: (f / "meta.yaml").write_text("gpu: x\n"), r"meta.yaml: field 'model'"),
    (lambda f: (f / "meta.yaml").write_text(META.replace("bf16\n", "fp8-kvfp8\n")),
     r"field 'variant': variant 'fp8-kvfp8'"),
])
def test_bad_bundles_are_one_line_errors(bundle, edit, message):
    folder, model = bundle
    edit(folder)
    with pytest.raises(KvplanError, match=message):
        b = lss.read_bundle(folder)
        lss.import_profile(b, lss.model_of(b, str(model)), lss.base_profile(b, None))


def test_model_mismatch_and_cli_exit_code(bundle):
    folder, _ = bundle
    with pytest.raises(InputError, match="hf_overrides.num_attention_heads.*llama-3.1-8b has 32"):
        lss.model_of(lss.read_bundle(folder), "llama-3.1-8b")
    res = CliRunner().invoke(app, ["profiles", "import", "llmservingsim", str(folder)])
    assert res.exit_code == 2 and "model 'toy/Toy-1B' has no bundled preset" in res.output


NUMBER = st.one_of(st.text(alphabet="0123456789.-e", max_size=6),
                   st.sampled_from(["0", "1", "nan", "inf", "1e999", "-0", ""]))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["qkv_proj", "lm_head", "layernorm", "sampler", "x",
                                           ""]), NUMBER, NUMBER), max_size=4),
       st.sampled_from(["dense.csv", "per_sequence.csv", "attention.csv"]))
def test_fuzz_tables(bundle, rows, name):
    """Extra or broken rows in any table: the import works or fails in one KvplanError line."""
    folder, model = bundle
    path = folder / "tp1" / name
    lines = [",".join(r if name != "attention.csv" else (r[1], r[2], r[1], r[2], r[1]))
             for r in rows]
    path.write_text(path.read_text() + "\n".join(lines))
    try:
        b = lss.read_bundle(folder)
        p = lss.import_profile(b, lss.model_of(b, str(model)), lss.base_profile(b, None))
    except KvplanError as exc:
        assert "\n" not in str(exc)
    else:
        step = CostModel.build(lss.model_of(b, str(model)), p).step_time_s(100, 5050, 4, 400)
        assert np.isfinite(step) and step > 0
