"""Hardware profiles: bundled ones validate, TOML round-trips exactly, curves flag extrapolation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kvplan.cost.model import CostModel
from kvplan.errors import KvplanError
from kvplan.hardware.profile import (
    Curve,
    Grid,
    HardwareProfile,
    LinkSpec,
    list_profiles,
    load_profile,
    profile_to_toml,
    write_profile,
)
from kvplan.model.spec import load_model

BUNDLED = ["h100-sxm", "h200", "b200", "a100-80gb", "l40s", "gh200", "mi300x", "cpu-test",
           "rtx-4090", "rtx-pro-6000", "l4", "a10g"]


def calibrated(base: HardwareProfile) -> HardwareProfile:
    """A calibrated profile built in Python, as kvplan calibrate does."""
    sizes = (4096.0, 65536.0, 1048576.0, 16777216.0)
    return dataclasses.replace(
        base, name="h100-measured", kind="calibrated",
        curves={"h2d": Curve(sizes, (2.0, 14.0, 40.0, 52.5)),
                "gemm": Grid((16.0, 256.0, 4096.0), (2.0**20, 2.0**26),
                             ((0.2, 0.5, 0.7), (0.6, 0.7, 0.8))),
                "attn_decode": Curve((1e6, 1e8, 1e10), (500.0, 2500.0, 3000.0)),
                "hbm": Curve((1e6, 1e8, 1e11), (500.0, 2500.0, 3000.0))},
        provenance={"run": "calibration/h100-measured.parquet", "date": "2025-01-01"},
    )


@pytest.mark.parametrize("name", sorted(set(BUNDLED) & set(list_profiles())))
def test_bundled_profile_validates_and_round_trips(name, tmp_path):
    profile = load_profile(name)
    write_profile(profile, tmp_path / "p.toml")
    assert load_profile(tmp_path / "p.toml") == profile
    for link in ("h2d", "d2h", "ssd_read", "ssd_write"):
        assert profile.link(link).transfer_time_s(1 << 20) > 0


def test_calibrated_profile_round_trips_exactly(tmp_path):
    profile = calibrated(load_profile("h100-sxm"))
    write_profile(profile, tmp_path / "m.toml")
    back = load_profile(str(tmp_path / "m.toml"))
    assert back == profile
    assert profile_to_toml(back) == profile_to_toml(profile)


def test_measured_link_interpolates_in_log_size_and_flags_outside():
    link = calibrated(load_profile("h100-sxm")).link("h2d")
    assert link.bandwidth_gbps(65536) == pytest.approx(14.0)
    assert link.bandwidth_gbps(2 ** 14) == pytest.approx(8.0)  # half way in log2 from 4 to 64 KiB
    assert link.covers(1 << 20) and not link.covers(1 << 30) and not link.covers(1024)
    assert list(link.covers(np.array([1024, 1 << 20]))) == [False, True]
    assert link.bandwidth_gbps(1 << 30) == pytest.approx(52.5)  # clamped, and flagged above


def test_default_link_shape():
    link = LinkSpec("h2d", latency_us=10.0, peak_gbps=50.0, half_bw_bytes=65536)
    assert link.bandwidth_gbps(65536) == pytest.approx(25.0)
    assert link.bandwidth_gbps(1 << 20) == pytest.approx(50 * 16 / 17)
    assert link.covers(1 << 40)


def test_calibrated_cost_model_flags_uncovered_steps():
    cm = CostModel.build(load_model("llama-3.1-8b"), calibrated(load_profile("h100-sxm")))
    assert cm.step_covered(0, 64, 64 * 1024)
    assert not cm.step_covered(0, 1, 100)  # 1 token < 16 measured
    assert list(cm.step_covered(0, np.array([1, 64]), np.array([100, 64 * 1024]))) == [False, True]
    assert not cm.step_covered(0, 64, 64 * 100_000)  # 26 GB of KV per layer > 10 GB measured
    assert cm.transfer_covered("h2d", 1 << 20) and not cm.transfer_covered("h2d", 1 << 30)
    datasheet = CostModel.build(load_model("llama-3.1-8b"), load_profile("h100-sxm"))
    assert datasheet.step_covered(0, 1, 100)


def test_capacities_and_counts():
    p = load_profile("h100-sxm")
    assert p.gpu.hbm_gib == 79.65 and p.host.dram_gib == 2048.0
    assert p.ssd.capacity_gib == pytest.approx(8 * 3576.28)
    assert p.link("ssd_read").peak_gbps == pytest.approx(56.0)


def test_unknown_profile_lists_bundled():
    with pytest.raises(KvplanError, match="h100-sxm"):
        load_profile("tpu-v9")


def test_grid_interpolates_bilinearly_in_log_log_and_flags_outside():
    g = Grid((1.0, 4.0), (16.0, 64.0), ((1.0, 3.0), (5.0, 7.0)))
    assert g(2.0, 16.0) == pytest.approx(2.0)          # half way in log2 from 1 to 4
    assert g(2.0, 32.0) == pytest.approx(4.0)          # and half way from row 16 to row 64
    assert g.row(32.0).y == pytest.approx((3.0, 5.0))
    assert g(100.0, 16.0) == pytest.approx(3.0)        # clamped...
    assert not g.covers(100.0, 16.0) and g.covers(2.0, 20.0)   # ...and flagged


def test_new_gpu_profiles_carry_their_gpu_link_and_fitted_ops():
    for name in ("rtx-4090", "rtx-pro-6000", "l4", "a10g"):
        p = load_profile(name)
        assert p.gpu_link_kind == "pcie"
        assert p.gpu_link_gbps == min(p.host_link.h2d_achieved_gbps, p.host_link.d2h_achieved_gbps)
        assert "fitted by bench/fit_datasheet.py" in p.sources["ops.attn_decode_frac"]
    h100 = load_profile("h100-sxm")
    assert h100.gpu_link_kind == "nvlink" and h100.gpu_link_gbps == 450.0
    assert "h100_sxm" in h100.sources["gpu.compute_efficiency_frac"]
