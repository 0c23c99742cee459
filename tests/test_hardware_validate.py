"""Invalid profile and price files give one-line errors naming the file and field (via the CLI)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kvplan.bundled import bundled_dir, bundled_file
from kvplan.cli.main import app
from kvplan.errors import InputError
from kvplan.hardware.prices import load_prices
from kvplan.hardware.profile import load_profile

RUN = CliRunner()
ENV = {"COLUMNS": "120"}
BASE = bundled_file("hwprofiles", "cpu-test.toml").read_text()


def validate(tmp_path, text: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return RUN.invoke(app, ["profiles", "validate", str(path)], env=ENV)


@pytest.mark.parametrize("edit, expected", [
    (("hbm_gib = 24.0", "hbm_gb = 24.0"),
     "field 'gpu.hbm_gb': wrong unit suffix: expected 'hbm_gib' (in GiB)"),
    (("hbm_gib = 24.0", "hbm_gib = 24.0\nhbm_type = \"HBM3\""), "field 'gpu.hbm_type': unknown field"),
    (("hbm_gib = 24.0\n", ""), "field 'gpu.hbm_gib': missing (required)"),
    (("schema_version = 1", "schema_version = 2"), "field 'schema_version': schema_version 2 is not"),
    (("hbm_gib = 24.0", "hbm_gib = -24.0"), "field 'gpu.hbm_gib': -24.0 is out of range"),
    (("count = 1\nhbm", "count = 1.5\nhbm"), "field 'gpu.count': expected int, got 1.5"),
    (("read_gbps = 2.0", "read_gbps = 200.0"), "field 'ssd.read_gbps': SSDs (count x read_gbps) faster than HBM"),
    (("h2d_achieved_gbps = 10.0", "h2d_achieved_gbps = 20.0"),
     "field 'host_link.h2d_achieved_gbps': achieved bandwidth above"),
    (("compute_efficiency_frac = 0.5", "compute_efficiency_frac = 50.0"),
     "field 'gpu.compute_efficiency_frac': 50.0 is out of range (expected 1e-06 to 1 a fraction"),
    (("\"gpu.hbm_gib\" = \"test fixture\"\n", ""), "needs a source for every number (add \"gpu.hbm_gib\""),
    (("kind = \"datasheet\"", "kind = \"calibrated\""), "field 'provenance.run': a calibrated profile"),
    (("[gpu]", "[gpu"), "not valid TOML"),
])
def test_profile_errors_are_one_line(tmp_path, edit, expected):
    old, new = edit
    assert old in BASE
    result = validate(tmp_path, BASE.replace(old, new, 1))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {tmp_path / 'bad.toml'}")
    assert expected in lines[0]
    assert "Traceback" not in result.output


def test_calibrated_curve_errors(tmp_path):
    text = BASE.replace('kind = "datasheet"', 'kind = "calibrated"') + (
        '\n[provenance]\nrun = "r"\ndate = "2025-01-01"\n'
        '\n[curves.h2d]\nsizes_bytes = [4096, 1024]\nbw_gbps = [1.0, 2.0]\n')
    result = validate(tmp_path, text)
    assert result.exit_code == 2
    assert "field 'curves.h2d.sizes_bytes': must be strictly increasing" in result.stderr
    result = validate(tmp_path, text.replace("[curves.h2d]", "[curves.pcie]"))
    assert "field 'curves.pcie': unknown curve" in result.stderr


def test_validate_ok_and_bundled_names(tmp_path):
    result = RUN.invoke(app, ["profiles", "validate", str(bundled_file("hwprofiles", "h100-sxm.toml"))],
                        env=ENV)
    assert result.exit_code == 0 and "ok:" in result.stdout
    result = RUN.invoke(app, ["profiles", "show", "nope"], env=ENV)
    assert result.exit_code == 2 and "h100-sxm" in result.stderr


def test_bundled_prices_have_sources_and_dates():
    prices = load_prices()
    for field in ("usd_per_gib_hbm", "usd_per_gib_dram", "usd_per_gib_ssd", "usd_per_gpu_hour"):
        assert getattr(prices, field) > 0
        assert prices.sources[field] and prices.dates[field]
    assert prices.usd_per_gib_hbm > prices.usd_per_gib_dram > prices.usd_per_gib_ssd


def test_price_errors(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text("schema_version = 1\n[prices]\nusd_per_gib_hbm = 1.0\n")
    with pytest.raises(InputError, match="field 'prices.usd_per_gib_dram': missing"):
        load_prices(path)
    path.write_text("schema_version = 1\n[prices]\nusd_per_gib_hbm = 1.0\nusd_per_gb_dram = 1.0\n")
    result = RUN.invoke(app, ["profiles", "prices", "--prices", str(path)], env=ENV)
    assert result.exit_code == 2
    assert "field 'prices.usd_per_gb_dram': unknown field" in result.stderr


def test_show_writes_parquet_and_json(tmp_path):
    result = RUN.invoke(app, ["profiles", "show", "h100-sxm", "--out", str(tmp_path)], env=ENV)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "profile_fields.parquet").is_file()
    assert (tmp_path / "profile_links.parquet").is_file()
    result = RUN.invoke(app, ["profiles", "show", "h100-sxm", "--json"], env=ENV)
    assert '"name": "h100-sxm"' in result.stdout
    assert load_profile("h100-sxm").name == "h100-sxm"


def test_list_shows_every_bundled_profile():
    result = RUN.invoke(app, ["profiles", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ["h100-sxm", "h200", "b200", "a100-80gb", "l40s", "gh200", "mi300x", "cpu-test"]:
        assert name in result.stdout


def test_validate_checks_the_bundled_folder_including_the_price_table():
    files = sorted(str(p) for p in bundled_dir("hwprofiles").glob("*.toml"))
    result = RUN.invoke(app, ["profiles", "validate", *files], env=ENV)
    assert result.exit_code == 0, result.output
    assert "prices.toml (price table)" in result.output
    assert result.output.count("ok: ") == len(files)
