"""Calibration math with fake timings: fits, curves, summaries and the profile they produce."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvplan.calibrate.build import calibrated_profile, fit_summary
from kvplan.calibrate.fit import fit_linear, measured_curve
from kvplan.calibrate.overlap import hidden_share
from kvplan.calibrate.samples import Point, SampleLog
from kvplan.calibrate.timing import Repeats, spread, time_repeats
from kvplan.cost.model import CostModel
from kvplan.hardware.profile import HardwareProfile, load_profile, write_profile
from kvplan.model.spec import load_model


def fake_timer(durations_s):
    """A timer that runs fn and returns the next given duration."""
    it = iter(durations_s)

    def timer(fn):
        fn()
        return next(it)

    return timer


def test_time_repeats_drops_warmup_and_keeps_order():
    calls = []
    samples = time_repeats(lambda: calls.append(1), fake_timer([9.0, 9.0, 1.0, 2.0, 3.0]),
                           Repeats(warmup=2, repeats=3))
    assert samples.tolist() == [1.0, 2.0, 3.0]
    assert len(calls) == 5


def test_spread_is_robust_to_one_outlier():
    s = spread(np.array([1.0, 1.0, 1.0, 1.0, 50.0]))
    assert s.median_s == 1.0 and s.n == 5 and s.p10_s == 1.0


def test_fit_linear_recovers_latency_and_bandwidth():
    sizes = np.array([64 << 10, 1 << 20, 16 << 20, 256 << 20], dtype=float)
    t = 12e-6 + sizes / 55e9
    f = fit_linear(sizes, t)
    assert f.intercept_s == pytest.approx(12e-6, rel=1e-6)
    assert f.rate == pytest.approx(55e9, rel=1e-6)
    assert f.max_rel_err < 1e-6


@settings(max_examples=40, deadline=None)
@given(lat_us=st.floats(0.5, 500), bw_gbps=st.floats(0.5, 5000))
def test_fit_linear_inverts_the_model(lat_us, bw_gbps):
    sizes = 2.0 ** np.arange(12, 31, 2)
    f = fit_linear(sizes, lat_us * 1e-6 + sizes / (bw_gbps * 1e9))
    assert f.rate / 1e9 == pytest.approx(bw_gbps, rel=1e-3)
    assert f.intercept_s * 1e6 == pytest.approx(lat_us, rel=1e-3)


def test_fit_linear_needs_two_sizes():
    with pytest.raises(ValueError):
        fit_linear([1e6, 1e6], [1.0, 1.0])


def test_measured_curve_reproduces_medians_through_the_link_formula():
    profile = load_profile("cpu-test")
    sizes, times = [65536.0, 1048576.0, 67108864.0], [20e-6, 40e-6, 1.3e-3]
    curve = measured_curve(sizes, times, 10e-6)
    assert curve.y[0] == pytest.approx(65536 / 10e-6 / 1e9, rel=1e-3)   # 6.5536 GB/s
    from dataclasses import replace
    link = replace(profile.link("h2d"), latency_us=10.0, measured=curve)
    for n, t in zip(sizes, times, strict=True):
        assert link.transfer_time_s(n) == pytest.approx(t, rel=1e-3)


def test_hidden_share_hand_values():
    assert hidden_share(4.0, 5.0, 6.0) == 0.75
    assert hidden_share(4.0, 5.0, 9.0) == 0.0      # fully serialised
    assert hidden_share(4.0, 5.0, 4.5) == 1.0      # clipped


def _fake_log() -> SampleLog:
    """Samples of a made-up GPU node: link 10 us + n / 50 GB/s, HBM 3,000 GB/s, layer fits."""
    log = SampleLog()
    for n in (1 << 16, 1 << 20, 1 << 24, 1 << 28):
        for case, bw in (("h2d/pinned/alone", 50e9), ("d2h/pinned/alone", 40e9)):
            log.add(Point("links", case, size_bytes=n), np.full(3, 10e-6 + n / bw))
        log.add(Point("links", "both/pinned", size_bytes=2 * n), np.full(3, 10e-6 + 2 * n / 80e9))
        log.add(Point("hbm", "d2d/copy", size_bytes=2 * n), np.full(3, 2 * n / 3000e9))
    for t in (512, 2048, 8192):
        flops = 2.0 * 218e6 * t
        log.add(Point("compute", "layer/prefill", 436_000_000, flops, 1, t),
                np.full(3, 5e-6 + flops / 600e12))
    for b in (1, 64):
        nbytes = 436_000_000 + b * 8192 * 4096
        log.add(Point("compute", "layer/decode", nbytes, 0.0, b, 1, 8192),
                np.full(3, 20e-6 + nbytes / 2800e9))
    log.add(Point("host", "dram/memcpy", size_bytes=2 << 26, batch=4), np.full(3, (2 << 26) / 40e9))
    _fake_ops(log)
    return log


def _fake_ops(log: SampleLog) -> None:
    """The per-operation sweep of a GPU whose GEMMs reach exactly half their roofline, whose
    prefill attention runs at 400 TFLOP/s and decode attention at 2,000 GB/s."""
    for n, k in ((4096, 4096), (16384, 4096)):
        for m in (1, 64, 4096):
            sol = max(2 * m * n * k / 989e12, 2 * (m * k + n * k + m * n) / 3350e9)
            log.add(Point("compute", "gemm/bf16", n * k * 2, 2.0 * m * n * k, n, m, k),
                    np.full(3, 2 * sol))
    for h in (8, 32):
        for t in (512, 4096):
            flops = 4.0 * h * 128 * t * (t + 1) / 2
            log.add(Point("compute", "attn/prefill", 0, flops, h, t), np.full(3, flops / 400e12))
    for b, c in ((1, 1024), (16, 8192), (64, 8192)):
        kv = b * c * 8 * 128 * 4
        log.add(Point("compute", "attn/decode", kv, 0.0, b, 1, c), np.full(3, kv / 2000e9))


def test_summary_columns_and_values():
    s = _fake_log().summary()
    row = s.filter((pl.col("case") == "h2d/pinned/alone") & (pl.col("size_bytes") == 1 << 28))
    assert row["median_s"][0] == pytest.approx(10e-6 + (1 << 28) / 50e9)
    assert row["gbps"][0] == pytest.approx((1 << 28) / row["median_s"][0] / 1e9)
    assert set(s.columns) >= {"median_s", "p10_s", "p90_s", "n", "gbps", "tflops"}


def _fake_profile() -> HardwareProfile:
    s = _fake_log().summary()
    base = load_profile("h100-sxm")
    return calibrated_profile(base, s, fit_summary(s), "fake-gpu",
                              {"run": "test", "date": "2026-01-01"}, ssd_direct=True)


def test_calibrated_profile_fields_from_fake_timings():
    p = _fake_profile()
    assert p.kind == "calibrated"
    assert p.host_link.h2d_achieved_gbps == pytest.approx(50.0, rel=1e-3)
    assert p.host_link.d2h_achieved_gbps == pytest.approx(40.0, rel=1e-3)
    assert p.host_link.latency_us == pytest.approx(10.0, rel=1e-3)
    assert p.gpu.compute_efficiency_frac == pytest.approx(600 / p.gpu.bf16_dense_tflops, rel=1e-3)
    assert p.gpu.hbm_efficiency_frac == pytest.approx(2800 / p.gpu.hbm_bw_gbps, rel=1e-3)
    assert p.gpu.step_overhead_us == load_profile("h100-sxm").gpu.step_overhead_us  # not a kernel
    assert np.allclose(p.curves["gemm"].z, 0.5) and p.curves["gemm"].x == (1.0, 64.0, 4096.0)
    assert p.curves["gemm"].y == (2.0**24, 2.0**26)   # 4096 x 4096 and 16384 x 4096 weights
    assert p.curves["attn_prefill"].y == (8.0, 32.0)
    assert np.allclose(p.curves["attn_prefill"].z, 400.0)
    assert np.allclose(p.curves["attn_decode"].y, 2000.0) and len(p.curves["attn_decode"].x) == 3
    assert {"gemm", "attn_prefill", "attn_decode"} <= set(p.provenance["measured"].split(", "))
    assert p.host.dram_bw_gbps == load_profile("h100-sxm").host.dram_bw_gbps   # 40 < 8 SSDs' read
    assert "dram" in p.provenance["not_measured"]
    assert p.curves["hbm"].y == pytest.approx((3000.0,) * 4)
    assert "ssd" in p.provenance["not_measured"]
    assert p.link("h2d").transfer_time_s(1 << 24) == pytest.approx(10e-6 + (1 << 24) / 50e9)


def test_calibrated_profile_round_trips_and_loads_in_cost_model(tmp_path):
    p = _fake_profile()
    path = tmp_path / "fake-gpu.toml"
    write_profile(p, path)
    back = load_profile(str(path))
    assert back.curves["h2d"].y == p.curves["h2d"].y
    cost = CostModel.build(load_model("llama-3.1-8b"), back)
    assert cost.transfer_time_s("h2d", 1 << 20) == pytest.approx(10e-6 + (1 << 20) / 50e9, rel=1e-3)
    assert cost.step_time_s(0, 0, 8, 8 * 1024) > 0


def test_calibrated_curves_drive_the_cost_model():
    """GEMMs at half their roofline: a 4,096-token prefill's GEMM part is twice the SOL."""
    p = _fake_profile()
    cm = CostModel.build(load_model("llama-3.1-8b"), p)
    ops = cm.steps.ops
    m, n, k = 4096.0, 4096.0, 4096.0
    sol = max(2 * m * n * k / 989e12, 2 * (m * k + n * k + m * n) / 3350e9)
    assert float(ops.gemm_s(m, n, k)) == pytest.approx(2 * sol, rel=1e-9)
    kv = 8 * 8192 * 8 * 128 * 4
    assert float(ops.attn_decode_s(kv)) == pytest.approx(kv / 2000e9, rel=1e-9)
    assert cm.coverage_ranges()[0] == (1.0, 4096.0, 1.0)


def test_rebuild_from_raw_samples_gives_the_same_profile(tmp_path):
    """The raw samples alone (no GPU) rebuild the profile the run wrote."""
    from kvplan.calibrate.run import rebuild_calibration

    log = _fake_log()
    prov = {"run": str(tmp_path), "date": "2026-01-01", "base": "h100-sxm", "profile": "fake-gpu"}
    log.write(tmp_path / "samples.parquet", prov | {"notes": "[]"})
    res = rebuild_calibration(tmp_path / "samples.parquet", out_dir=tmp_path / "again")
    assert res.profile.name == "fake-gpu"
    expected = _fake_profile()
    assert res.profile.curves == expected.curves
    assert res.profile.gpu == expected.gpu and res.profile.host_link == expected.host_link
    assert load_profile(str(res.profile_path)) == res.profile
    assert res.profile.provenance["rebuilt_from"].endswith("samples.parquet")
