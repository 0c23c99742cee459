"""Predictions outside a calibrated profile's measured ranges are flagged, not silent."""

from __future__ import annotations

import dataclasses
import json

import pytest
from event_helpers import head
from typer.testing import CliRunner

from kvplan.cli.main import app
from kvplan.cost.model import CostModel
from kvplan.hardware.profile import Curve, Grid, load_profile, write_profile
from kvplan.model.spec import load_model
from kvplan.sim.config import ReplayConfig
from kvplan.sim.coverage import Range, StepCoverage, summary
from kvplan.sim.engine import EventSim
from kvplan.sim.results import Extrapolation
from kvplan.trace import load_workload

MIB = 2**20


def calibrated(narrow: bool = True):
    """h100-sxm with measured h2d, gemm and attn_decode curves (narrow ranges, or very wide
    ones): steps of 16..64 tokens and decodes reading 1..2 MiB of KV per layer are covered."""
    prof = load_profile("h100-sxm")
    lo, hi = (MIB, 2 * MIB) if narrow else (1.0, 1e15)
    tokens = (16.0, 64.0) if narrow else (1.0, 1e9)
    curves = {"h2d": Curve((lo, hi), (40.0, 50.0)),
              "gemm": Grid(tokens, (1e6, 1e9), ((0.5, 0.6), (0.7, 0.8))),
              "attn_decode": Curve((lo, hi), (2000.0, 2600.0))}
    return dataclasses.replace(prof, name="cal", kind="calibrated", curves=curves,
                               provenance={"run": "test", "date": "2025-01"})


@pytest.fixture(scope="module")
def small():
    return head(load_workload(), 150)


def _run(workload, profile):
    cfg = ReplayConfig(dram_gib=64.0)
    sim = EventSim(workload, cfg, CostModel.build(load_model(cfg.model), profile))
    sim.run()
    return sim.result().run.timing.extrapolated


def test_range_reports_only_when_something_fell_outside():
    r = Range(64 * 1024, 256 * MIB)
    r.add(MIB)
    assert r.describe("h2d transfers", "bytes") == ""
    r.add(2**30, 3)
    assert r.describe("h2d transfers", "bytes") == \
        "h2d transfers 1 MiB..1 GiB outside measured 64 KiB..256 MiB (3 of 4)"
    assert Range().describe("x", "bytes") == ""


def test_decode_run_counts_the_iterations_outside_like_one_by_one():
    cost = CostModel.build(load_model("llama-3.1-8b"), calibrated())
    reads = [cost.step_read_bytes(64, 64, 64 * (4096 + j)) for j in range(300)]
    ranges = [(0.0, 1e30), (1.0, 2.0), (reads[50], reads[200]), (reads[100], 1e30),
              (0.0, reads[150] - 1)]
    for lo, hi in ranges:
        cov = StepCoverage(cost)
        cov.tokens = Range()
        cov.read = Range(lo, hi)
        cov.add_run(64, 64 * 4096, 300)
        assert cov.outside == sum(not lo <= r <= hi for r in reads)
        assert (cov.read.low, cov.read.high) == (reads[0], reads[-1])


def test_calibrated_profile_with_narrow_ranges_is_flagged(small):
    run = _run(small, calibrated())
    text = run.text
    assert "h2d transfers" in text and "outside measured 1 MiB..2 MiB" in text
    assert "step tokens" in text and "outside measured 16..64" in text
    assert "step HBM bytes read per GPU" in text
    assert run.steps > 0 and run.transfers > 0


def test_wide_calibrated_ranges_and_datasheet_profiles_never_flag(small):
    for profile in (calibrated(narrow=False), load_profile("h100-sxm")):
        run = _run(small, profile)
        assert run == Extrapolation("", 0, 0)


def test_summary_joins_the_clauses():
    cost = CostModel.build(load_model("llama-3.1-8b"), load_profile("h100-sxm"))
    links = {"h2d": Range(MIB, 2 * MIB), "d2h": Range()}
    links["h2d"].add(4 * MIB)
    assert summary(StepCoverage(cost), links) == Extrapolation(
        "h2d transfers 4 MiB..4 MiB outside measured 1 MiB..2 MiB (1 of 1)", 0, 1)


def test_cli_prints_one_warning_line_and_json_carries_the_field(small, tmp_path):
    from kvplan.workload import write_workload

    trace, prof = tmp_path / "small.parquet", tmp_path / "cal.toml"
    write_workload(small, trace)
    write_profile(calibrated(), prof)
    args = ["replay", "--trace", str(trace), "--profile", str(prof), "--dram-gib", "64"]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "h2d transfers" in warnings[0]
    res = CliRunner().invoke(app, [*args, "--json"], env={"COLUMNS": "120"})
    run = json.loads(res.output)[0]["run"]
    assert run["extrapolated"] and run["extrapolated_transfers"] > 0
    res = CliRunner().invoke(app, ["replay", "--trace", str(trace)], env={"COLUMNS": "120"})
    assert "warning:" not in res.output
