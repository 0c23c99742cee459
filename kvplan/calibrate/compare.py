"""Measured vs datasheet: the rows of the summary table printed after a run.

Columns (also ``comparison.parquet`` in the run folder): ``figure``, ``unit``, ``measured``,
``datasheet`` (the base profile's number, None where it has none), ``ratio`` = measured /
datasheet.
"""

from __future__ import annotations

import polars as pl

from kvplan.calibrate.build import Fits
from kvplan.hardware.profile import HardwareProfile
from kvplan.model.spec import ModelSpec


def _max(s: pl.DataFrame, case: str, col: str, **where: int) -> float | None:
    df = s.filter(pl.col("case") == case)
    for k, v in where.items():
        df = df.filter(pl.col(k) == v)
    return float(df[col].max()) if df.height else None


def _median(s: pl.DataFrame, case: str, col: str) -> float | None:
    df = s.filter(pl.col("case") == case)
    return float(df[col].median()) if df.height else None


def _overlap(s: pl.DataFrame, kind: str) -> tuple[float | None, float | None]:
    from kvplan.calibrate.overlap import hidden_share

    t = {c: _median(s, f"overlap/{kind}/{c}", "median_s")
         for c in ("compute_alone", "both", "compute_during")}
    copy = _median(s, "overlap/copy_alone", "median_s")
    if None in t.values() or copy is None:
        return None, None
    return hidden_share(copy, t["compute_alone"], t["both"]), t["compute_during"] / t["compute_alone"]


def _gb(f) -> float | None:
    return f.rate / 1e9 if f else None


def comparison_rows(
    s: pl.DataFrame, fits: Fits, base: HardwareProfile, spec: ModelSpec
) -> list[dict]:
    """Measured figures next to the base profile's datasheet numbers."""
    g, hl, h, d = base.gpu, base.host_link, base.host, base.ssd
    rows = [
        ("H2D pinned (fit, large transfers)", "GB/s", _gb(fits.h2d), hl.h2d_achieved_gbps),
        ("D2H pinned (fit, large transfers)", "GB/s", _gb(fits.d2h), hl.d2h_achieved_gbps),
        ("H2D pageable, largest size", "GB/s", _max(s, "h2d/pageable/alone", "gbps"),
         hl.h2d_achieved_gbps),
        ("H2D + D2H at once (pinned)", "GB/s", _max(s, "both/pinned", "gbps"),
         hl.bidir_achieved_gbps),
        ("host link latency (fit)", "us",
         fits.h2d.intercept_s * 1e6 if fits.h2d else None, hl.latency_us),
        ("HBM device copy (read + write)", "GB/s", _max(s, "d2d/copy", "gbps"), g.hbm_bw_gbps),
        ("KV gather 16-token blocks, per block", "GB/s",
         _max(s, "gather/per_block", "gbps", tokens=16), hl.d2h_achieved_gbps),
        ("KV gather 16-token blocks, batched", "GB/s",
         _max(s, "gather/batched", "gbps", tokens=16), hl.d2h_achieved_gbps),
        ("KV scatter 16-token blocks, per block", "GB/s",
         _max(s, "scatter/per_block", "gbps", tokens=16), hl.h2d_achieved_gbps),
        ("KV scatter 16-token blocks, batched", "GB/s",
         _max(s, "scatter/batched", "gbps", tokens=16), hl.h2d_achieved_gbps),
        ("matmul bf16, best shape", "TFLOP/s", _max(s, "matmul/bf16", "tflops"),
         g.bf16_dense_tflops),
        ("matmul fp8, best shape", "TFLOP/s", _max(s, "matmul/fp8", "tflops"), g.fp8_dense_tflops),
        ("matmul fp32 on the CPU, best shape", "TFLOP/s", _max(s, "matmul/fp32", "tflops"), None),
        (f"{spec.name} layer prefill (fit)", "TFLOP/s",
         fits.prefill.rate / 1e12 if fits.prefill else None, g.bf16_dense_tflops),
        (f"{spec.name} layer decode (fit)", "GB/s", _gb(fits.decode), g.hbm_bw_gbps),
        ("step overhead (decode intercept x layers)", "us",
         fits.decode.intercept_s * 1e6 * spec.num_layers if fits.decode else None,
         g.step_overhead_us),
        ("DRAM memcpy (read + write)", "GB/s", _max(s, "dram/memcpy", "gbps"), h.dram_bw_gbps),
        ("SSD sequential read", "GB/s", _max(s, "ssd/seq_read", "gbps"), d.count * d.read_gbps),
        ("SSD sequential write", "GB/s", _max(s, "ssd/seq_write", "gbps"), d.count * d.write_gbps),
        ("SSD 4 KiB random read latency", "us", _ssd_latency_us(s), d.read_latency_us),
    ]
    for kind in ("matmul", "attention"):
        hidden, slow = _overlap(s, kind)
        rows += [(f"copy hidden behind {kind}", "share", hidden, None),
                 (f"{kind} slowdown during copy", "x", slow, None)]
    return [
        {"figure": f, "unit": u, "measured": m, "datasheet": ds,
         "ratio": m / ds if m is not None and ds else None}
        for f, u, m, ds in rows if m is not None
    ]


def _ssd_latency_us(s: pl.DataFrame) -> float | None:
    df = s.filter((pl.col("case") == "ssd/rand_read") & (pl.col("size_bytes") == 4096))
    return float(df["median_s"][0]) * 1e6 if df.height else None
