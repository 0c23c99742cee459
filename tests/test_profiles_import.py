"""`kvplan profiles import aiconfigurator` on a fake package laid out like AIConfigurator's.

The fake tables come from formulas, so each imported curve has a hand-known value: every GEMM
at exactly half its roofline (util 0.5), prefill attention at 300 TFLOP/s, decode attention at
2,000 GB/s, all-reduce at 100 GB/s. The bundled imports of the real package are checked too.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.cost.model import CostModel
from kvplan.errors import KvplanError
from kvplan.hardware import aiconfigurator as aic
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model

FLOPS, BW = 989e12, 3350e9
YAML = """data_dir: data/h100_sxm
gpu:
  mem_bw: 3350000000000
  mem_bw_empirical_scaling_factor: 0.8
  mem_empirical_constant_latency: 0.000003
  mem_capacity: 85899345920
  bfloat16_tc_flops: 989000000000000
  fp8_tc_flops: 1978000000000000
node:
  num_gpus_per_node: 8
  intra_node_bw: 450000000000
  pcie_bw: 64000000000
  p2p_latency: 0.00001
"""


def _write(folder, name, frame: pl.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / name)


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    root = tmp_path / "systems"
    data = root / "data" / "h100_sxm"
    (root / "data").mkdir(parents=True)
    (root / "h100_sxm.yaml").write_text(YAML)
    (root / "query_versions.yaml").write_text(
        "defaults:\n  vllm: {current: \"0.24.0\", previous: null}\n")
    rows = [(m, n, k) for m in (1, 16, 256, 4096) for n, k in ((4096, 4096), (16384, 4096))]
    m, n, k = (np.array(c, dtype=np.float64) for c in zip(*rows, strict=True))
    sol = np.maximum(2 * m * n * k / FLOPS, 2 * (m * k + n * k + m * n) / BW)
    _write(data / "gemm" / "vllm" / "0.24.0", "gemm_perf.parquet", pl.DataFrame({
        "gemm_dtype": ["bfloat16"] * len(rows), "kernel_source": ["linear"] * len(rows),
        "m": m.astype(int), "n": n.astype(int), "k": k.astype(int), "latency": 2 * sol * 1e3}))
    s = np.array([512.0, 2048.0, 8192.0] * 2)
    h = np.array([8] * 3 + [32] * 3)
    flops = 4 * h * 128 * s * (s + 1) / 2
    attn = {"kernel_source": "fa", "kv_cache_dtype": "bfloat16", "head_dim": 128,
            "window_size": 0, "attn_dtype": "bfloat16"}
    ctx = pl.DataFrame({"batch_size": [1] * 6, "isl": s.astype(int), "num_heads": h,
                        "num_key_value_heads": h // 4, "step": [0] * 6,
                        "latency": flops / 300e12 * 1e3}).with_columns(
        **{k: pl.lit(v) for k, v in attn.items()})
    kv = np.array([1 << 20, 1 << 24, 1 << 28], dtype=np.float64)
    steps = (kv / (8 * 128 * 4) - 1).astype(int)
    gen = pl.DataFrame({"batch_size": [1] * 3, "isl": [1] * 3, "num_heads": [32] * 3,
                        "num_key_value_heads": [8] * 3, "step": steps,
                        "latency": kv / 2000e9 * 1e3}).with_columns(
        **{k: pl.lit(v) for k, v in attn.items()})
    folder = data / "attention" / "vllm" / "0.24.0"
    _write(folder, "context_attention_perf.parquet", ctx)
    _write(folder, "generation_attention_perf.parquet", gen)
    size = np.array([1 << 10, 1 << 20, 1 << 24] * 2, dtype=np.float64)
    _write(data / "comm" / "vllm" / "0.24.0", "custom_allreduce_perf.parquet", pl.DataFrame({
        "allreduce_dtype": ["bfloat16"] * 6, "backend": ["vllm_graph"] * 6,
        "num_gpus": [2] * 3 + [4] * 3, "message_size": size.astype(int),
        "latency": size * 2 / 100e9 * 1e3}))
    monkeypatch.setattr(aic, "systems_dir", lambda: root)
    monkeypatch.setattr(aic, "package_version", lambda: "0.0-test")
    return root


def test_import_reduces_the_tables_to_the_cost_models_curves(fake_root):
    src = aic.resolve("h100_sxm", "vllm", root=fake_root)
    assert src.versions == {"gemm": "0.24.0", "attention": "0.24.0", "comm": "0.24.0"}
    p = aic.import_profile(src, today="2026-01-01")
    assert p.kind == "imported" and p.name == "h100-sxm-aic-vllm"
    assert np.allclose(p.curves["gemm"].z, 0.5) and p.curves["gemm"].x == (1.0, 16.0, 256.0, 4096.0)
    assert np.allclose(p.curves["attn_prefill"].z, 300.0) and p.curves["attn_prefill"].y == (8.0, 32.0)
    assert np.allclose(p.curves["attn_decode"].y, 2000.0)
    assert np.allclose(p.curves["allreduce"].z, 100.0) and p.curves["allreduce"].y == (2.0, 4.0)
    assert p.ops.elementwise_frac == 0.8 and p.ops.attn_prefill_extra_us == pytest.approx(13.2)
    assert p.provenance["licence"].startswith("Apache-2.0")
    assert p.provenance["package_version"] == "0.0-test"
    assert p.host == load_profile("h100-sxm").host   # host, link, SSDs from the base profile
    cm = CostModel.build(load_model("llama-3.1-8b"), p)
    sol = max(2 * 64 * 4096 * 4096 / FLOPS, 2 * (64 * 4096 * 2 + 4096 * 4096) / BW)
    assert float(cm.steps.ops.gemm_s(64, 4096, 4096)) == pytest.approx(2 * sol, rel=1e-9)
    assert float(cm.steps.ops.allreduce_s(1 << 20, 2)) == pytest.approx((1 << 20) / 100e9)


def test_cli_writes_a_valid_profile_and_names_missing_data(fake_root, tmp_path):
    out = tmp_path / "imp.toml"
    res = CliRunner().invoke(app, ["profiles", "import", "aiconfigurator", "--system",
                                   "h100_sxm", "--backend", "vllm", "-o", str(out)],
                             env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert load_profile(str(out)).kind == "imported"
    res = CliRunner().invoke(app, ["profiles", "import", "aiconfigurator", "--system",
                                   "h100_sxm", "--backend", "sglang"])
    assert res.exit_code == 2 and "--backend sglang: h100_sxm has tables for vllm" in res.output
    res = CliRunner().invoke(app, ["profiles", "import", "aiconfigurator", "--list", "--json"])
    assert res.exit_code == 0 and '"system": "h100_sxm"' in res.output


def test_missing_package_is_one_line(monkeypatch):
    monkeypatch.setattr(aic.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KvplanError, match=r"pip install 'kvplan\[import\]'"):
        aic.systems_dir()


@pytest.mark.parametrize("name", ["h100-sxm-aic-vllm", "h200-sxm-aic-vllm"])
def test_bundled_imports_load_and_flag_what_they_did_not_measure(name):
    p = load_profile(name)
    assert p.kind == "imported" and {"gemm", "attn_prefill", "attn_decode"} <= set(p.curves)
    cm = CostModel.build(load_model("llama-3.1-8b"), p)
    assert cm.step_covered(2048, 0, 0)
    top = p.curves["gemm"].x[-1]
    assert not cm.step_covered(int(top) * 2, 0, 0)


def test_profiles_show_lists_the_measured_curves_and_ops():
    res = CliRunner().invoke(app, ["profiles", "show", "h100-sxm-aic-vllm"],
                             env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "Measured curves" in res.output and "attn_decode" in res.output
    assert "ops.attn_prefill_extra_us" in res.output
