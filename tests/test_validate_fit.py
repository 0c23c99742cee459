"""`--fit`: the free constants, a fit that recovers a known profile, determinism, the file."""

import dataclasses

import polars as pl
import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.hardware.profile import Curve, load_profile, profile_to_toml, write_profile
from kvplan.validate import fit as fit_module
from kvplan.validate.fit import fit_profile, split_index
from kvplan.validate.params import free_params, with_values
from kvplan.validate.read import default_run_path, read_run
from kvplan.validate.runner import run_validation
from kvplan.validate.settings import Overrides, resolve

ENV = {"COLUMNS": "120"}
TRUTH = (0.75, 0.9, 250.0)
"""compute efficiency, HBM efficiency, step overhead (us) of the synthetic 'real' engine."""


def test_free_params_of_datasheet_and_calibrated_profiles():
    base = load_profile("rtx-4090")
    params = free_params(base)
    assert [p.name for p in params] == ["gpu.compute_efficiency_frac", "gpu.hbm_efficiency_frac",
                                        "gpu.step_overhead_us"]
    assert tuple(p.get(base) for p in params) == (0.6, 0.8, 500.0)
    moved = with_values(base, params, TRUTH)
    assert (moved.gpu.compute_efficiency_frac, moved.gpu.step_overhead_us) == (0.75, 250.0)
    curved = dataclasses.replace(base, kind="calibrated",
                                 curves={"hbm": Curve((1.0, 2.0), (500.0, 800.0))})
    params = free_params(curved)
    assert params[1].name == "curves.hbm.scale" and params[1].get(curved) == 1.0
    assert with_values(curved, params, (0.6, 0.5, 500.0)).curves["hbm"].y == (250.0, 400.0)


def test_split_index():
    assert split_index(300, 0.5) == 150
    assert split_index(3, 0.01) == 1 and split_index(3, 0.99) == 2


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """The bundled run's first 80 requests, 'measured' on a profile with TRUTH constants."""
    folder = tmp_path_factory.mktemp("truth")
    truth = folder / "truth.toml"
    write_profile(with_values(load_profile("rtx-4090"), free_params(load_profile("rtx-4090")),
                              TRUTH), truth)
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
