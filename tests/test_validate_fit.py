"""`--fit`: the free constants, a fit that recovers a known profile, determinism, the file."""

import dataclasses

import polars as pl
import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.cost.params import with_parameters
from kvplan.hardware.profile import load_profile, profile_to_toml, write_profile
from kvplan.validate import fit as fit_module
from kvplan.validate.fit import Groups, fit_profile, split_index
from kvplan.validate.read import default_run_path, read_run
from kvplan.validate.runner import run_validation
from kvplan.validate.settings import Overrides, resolve

ENV = {"COLUMNS": "120"}
TRUTH = (0.8, 1.1, 0.5)
"""compute, memory and fixed-cost factors of the synthetic 'real' engine over rtx-4090."""


def test_groups_of_datasheet_and_imported_profiles():
    base = load_profile("rtx-4090")
    groups = Groups.of(base)
    assert list(groups.members) == ["compute", "memory", "fixed"]      # no link at tp 1
    assert set(groups.members["compute"]) == {"gpu.compute_efficiency_frac",
                                              "ops.attn_prefill_frac"}
    assert "ops.attn_prefill_half_tokens" not in groups.all            # a shape: held
    assert list(Groups.of(base, link=True).members)[-1] == "link"
    moved = groups.values((1.2, 0.5, 2.0))
    assert moved["gpu.compute_efficiency_frac"] == 1.0                 # 0.943 x 1.2, clipped
    assert moved["ops.attn_prefill_frac"] == pytest.approx(1.2 * base.ops.attn_prefill_frac)
    assert moved["gpu.hbm_efficiency_frac"] == pytest.approx(base.gpu.hbm_efficiency_frac / 2)
    assert moved["gpu.step_overhead_us"] == pytest.approx(base.gpu.step_overhead_us / 2)
    imported = Groups.of(load_profile("h100-sxm-aic-vllm"))
    assert {"curves.gemm.scale", "curves.attn_prefill.scale"} == set(imported.members["compute"])
    scaled = with_parameters(load_profile("h100-sxm-aic-vllm"), {"curves.attn_decode.scale": 2.0})
    assert scaled.curves["attn_decode"].y[0] == 2 * load_profile(
        "h100-sxm-aic-vllm").curves["attn_decode"].y[0]


def test_split_index():
    assert split_index(300, 0.5) == 150
    assert split_index(3, 0.01) == 1 and split_index(3, 0.99) == 2


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """The bundled run's first 80 requests, 'measured' on a profile with TRUTH constants."""
    folder = tmp_path_factory.mktemp("truth")
    truth = folder / "truth.toml"
    base = load_profile("rtx-4090")
    write_profile(with_parameters(base, Groups.of(base).values(TRUTH)), truth)
    run = read_run(default_run_path())
    run = dataclasses.replace(run, requests=run.requests.head(80))
    settings = resolve(run, Overrides())
    measured = run_validation(run, settings, profile=str(truth)).requests
    csv = folder / "measured.csv"
    measured.select("arrival_s", "input_tokens", "output_tokens",
                    pl.col("sim_ttft_ms").alias("ttft_ms"), pl.col("sim_e2e_ms").alias("e2e_ms")
                    ).write_csv(csv, float_precision=12)
    flags = Overrides(model="llama-3.1-8b", profile="rtx-4090", max_seqs=256,
                      max_batched_tokens=2048, block_size=16, kv_pool_tokens=41408)
    return read_run(csv), flags


def test_fit_recovers_a_known_engine(synthetic_run):
    run, flags = synthetic_run
    result = fit_profile(run, resolve(run, flags))
    for part in (result.in_sample, result.held_out):
        for m in ("ttft_mean_ms", "tpot_mean_ms", "e2e_mean_ms"):
            assert abs(part.row(m).error_frac) < 0.02, (m, part.row(m))
    assert result.profile.name == "rtx-4090-fit"
    assert "fitted by kvplan validate --fit" in result.profile.sources["gpu.step_overhead_us"]
    assert result.fit_requests == 40 and result.held_out_requests == 40


def test_fit_cli_is_deterministic_and_loadable(synthetic_run, tmp_path, monkeypatch):
    monkeypatch.setattr(fit_module, "MAX_EVALUATIONS", 12)
    run, flags = synthetic_run
    args = ["validate", str(run.path), "--model", "llama-3.1-8b", "--profile", "rtx-4090",
            "--kv-pool-tokens", "41408", "--fit"]
    texts = []
    for name in ("a", "b"):
        res = CliRunner().invoke(app, [*args, "-o", str(tmp_path / name)], env=ENV)
        assert res.exit_code == 0, res.output
        assert "Fitted constants (12 replays)" in res.output and "held-out part" in res.output
        texts.append((tmp_path / name / "rtx-4090-fit.toml").read_text())
        parts = pl.read_parquet(tmp_path / name / "validation.parquet")["part"].unique().sort()
        assert parts.to_list() == ["all", "fit", "held-out"]
    assert texts[0] == texts[1]
    fitted = tmp_path / "a" / "rtx-4090-fit.toml"
    assert profile_to_toml(load_profile(fitted)) == texts[0]
    res = CliRunner().invoke(app, [*args[:4], "--profile", str(fitted), "--kv-pool-tokens",
                                   "41408"], env=ENV)
    assert res.exit_code == 0, res.output
