"""Summary of a run -> fits -> a calibrated HardwareProfile (measured fields over a datasheet base).

Every measured figure replaces the base profile's datasheet value; everything not measured
keeps the base value and is listed under ``provenance.not_measured``. Mapping:

| profile field | from |
| --- | --- |
| host_link.h2d/d2h_achieved_gbps, latency_us, half_bw_bytes | latency-bandwidth fit of pinned copies (alone) |
| curves.h2d, curves.d2h | measured size -> GB/s with the shared latency |
| host_link.bidir_achieved_gbps | best ``both/pinned`` bandwidth |
| curves.hbm | device copy GB/s vs size (read + write bytes): elementwise kernels |
| curves.gemm | ``gemm/bf16``: util = roofline / time over tokens x weight elements |
| curves.attn_prefill | ``attn/prefill``: causal TFLOP/s over sequence length x query heads |
| curves.attn_decode | ``attn/decode``: GB/s over KV bytes read (quarter-octave medians) |
| gpu.compute_efficiency_frac | layer prefill fit: TFLOP/s / bf16 peak (used only without curves.gemm) |
| gpu.hbm_efficiency_frac | layer decode fit: GB/s / HBM peak (used only without curves.gemm) |

The framework overhead per iteration (``gpu.step_overhead_us``, ``ops.overhead_per_seq_us``)
is not a kernel and is not measured here: it keeps the base profile's value (fit it to an
engine run with ``kvplan validate --fit``); the GPU-to-GPU link needs several GPUs and keeps
the datasheet form.
| host.dram_bw_gbps | best DRAM memcpy GB/s (read + write bytes) |
| ssd.read/write_gbps, read_latency_us, curves.ssd_read | SSD family (direct I/O only), per drive |
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from kvplan.calibrate.fit import LinearFit, fit_linear, measured_curve
from kvplan.hardware import measured
from kvplan.hardware.profile import Curve, HardwareProfile


@dataclass(frozen=True)
class Fits:
    """Every fit of one run (None where the family was not measured)."""

    h2d: LinearFit | None = None
    d2h: LinearFit | None = None
    ssd_read: LinearFit | None = None
    prefill: LinearFit | None = None
    decode: LinearFit | None = None

    def rows(self) -> list[dict]:
        """One row per fit for tables: intercept, rate and relative errors."""
        out = []
        for name in ("h2d", "d2h", "ssd_read", "prefill", "decode"):
            f: LinearFit | None = getattr(self, name)
            if f is not None:
                unit = "TFLOP/s" if name == "prefill" else "GB/s"
                rate = f.rate / (1e12 if name == "prefill" else 1e9)
                out.append({"fit": name, "intercept_us": f.intercept_s * 1e6, "rate": rate,
                            "unit": unit, "median_rel_err": f.median_rel_err,
                            "max_rel_err": f.max_rel_err, "points": f.n_points})
        return out


def _case(summary: pl.DataFrame, case: str) -> pl.DataFrame:
    return summary.filter(pl.col("case") == case)


def _fit(df: pl.DataFrame, work: str) -> LinearFit | None:
    if df.height < 2 or df[work].n_unique() < 2:
        return None
    return fit_linear(df[work].to_numpy(), df["median_s"].to_numpy())


def fit_summary(summary: pl.DataFrame) -> Fits:
    """Fit links, SSD reads and layer timings from a run's summary."""
    return Fits(
        h2d=_fit(_case(summary, "h2d/pinned/alone"), "size_bytes"),
        d2h=_fit(_case(summary, "d2h/pinned/alone"), "size_bytes"),
        ssd_read=_fit(_case(summary, "ssd/rand_read"), "size_bytes"),
        prefill=_fit(_case(summary, "layer/prefill"), "flops"),
        decode=_fit(_case(summary, "layer/decode"), "size_bytes"),
    )


def calibrated_profile(
    base: HardwareProfile, summary: pl.DataFrame, fits: Fits, name: str,
    provenance: dict[str, str], ssd_direct: bool,
) -> HardwareProfile:
    """The base profile with every measured figure of ``summary`` / ``fits`` put in."""
    p = replace(base, name=name, kind="calibrated", curves={}, sources={},
                description=f"{base.gpu.model} node calibrated by kvplan calibrate "
                            f"(base datasheet profile: {base.name})")
    done: list[str] = []
    p = _links(p, summary, fits, done)
    p = _hbm(p, summary, done)
    p = _compute(p, fits, done)
    p = _op_curves(p, summary, done)
    if ssd_direct:
        p = _ssd(p, summary, fits, done)
    p = _host(p, summary, done)
    not_measured = [f for f in ALL_GROUPS if f not in done]
    prov = dict(provenance) | {"measured": ", ".join(done) or "none",
                               "not_measured": ", ".join(not_measured) or "none"}
    prov |= {f"fit.{r['fit']}": _fit_text(r) for r in fits.rows()}
    return replace(p, provenance=prov)


ALL_GROUPS = ("host_link", "hbm", "compute", "decode", "gemm", "attn_prefill", "attn_decode",
              "dram", "ssd")


def _fit_text(row: dict) -> str:
    return (f"t = {row['intercept_us']:.3g} us + work / ({row['rate']:.4g} {row['unit']}); "
            f"relative error median {row['median_rel_err']:.2%}, max {row['max_rel_err']:.2%} "
            f"over {row['points']} points")


def _links(p: HardwareProfile, s: pl.DataFrame, fits: Fits, done: list[str]) -> HardwareProfile:
    if fits.h2d is None or fits.d2h is None:
        return p
    lat = min(fits.h2d.intercept_s, fits.d2h.intercept_s)
    curves = {}
    for name in ("h2d", "d2h"):
        df = _case(s, f"{name}/pinned/alone")
        curves[name] = measured_curve(df["size_bytes"], df["median_s"], lat)
    both = _case(s, "both/pinned")
    hl = replace(
        p.host_link,
        h2d_achieved_gbps=round(fits.h2d.rate / 1e9, 3),
        d2h_achieved_gbps=round(fits.d2h.rate / 1e9, 3),
        bidir_achieved_gbps=round(float(both["gbps"].max()), 3) if both.height else
        p.host_link.bidir_achieved_gbps,
        latency_us=round(lat * 1e6, 3),
        half_bw_bytes=int(fits.h2d.intercept_s * fits.h2d.rate),
    )
    done.append("host_link")
    return replace(p, host_link=hl, curves=p.curves | curves)


def _gbps_curve(df: pl.DataFrame, x: str, y: str) -> Curve:
    df = df.sort(x)
    return Curve(tuple(float(v) for v in df[x]), tuple(round(float(v), 4) for v in df[y]))


def _hbm(p: HardwareProfile, s: pl.DataFrame, done: list[str]) -> HardwareProfile:
    df = _case(s, "d2d/copy")
    if df.height < 2:
        return p
    done.append("hbm")
    return replace(p, curves=p.curves | {"hbm": _gbps_curve(df, "size_bytes", "gbps")})


def _frac(x: float) -> float:
    return round(float(np.clip(x, 1e-6, 1.0)), 4)


def _compute(p: HardwareProfile, fits: Fits, done: list[str]) -> HardwareProfile:
    """Layer fits -> the datasheet form's efficiencies (the fallback where no curve applies)."""
    gpu = p.gpu
    if fits.prefill is not None:
        gpu = replace(gpu, compute_efficiency_frac=_frac(
            fits.prefill.rate / 1e12 / gpu.bf16_dense_tflops))
        done.append("compute")
    if fits.decode is not None:
        gpu = replace(gpu, hbm_efficiency_frac=_frac(fits.decode.rate / 1e9 / gpu.hbm_bw_gbps))
        done.append("decode")
    return replace(p, gpu=gpu)


def _op_curves(p: HardwareProfile, s: pl.DataFrame, done: list[str]) -> HardwareProfile:
    """The per-operation curves the cost model reads, from the ``compute`` family's sweep."""
    curves, g = dict(p.curves), p.gpu
    gemm = _case(s, "gemm/bf16")
    if gemm["tokens"].n_unique() >= 2:
        m, n, k = (gemm[c].to_numpy() for c in ("tokens", "batch", "context"))
        util = measured.gemm_util(m, n, k, gemm["median_s"].to_numpy(),
                                  g.bf16_dense_tflops * 1e12, g.hbm_bw_gbps * 1e9)
        curves["gemm"] = measured.gemm_grid(m, n, k, util)
        done.append("gemm")
    pre = _case(s, "attn/prefill")
    if pre["tokens"].n_unique() >= 2:
        curves["attn_prefill"] = measured.mean_grid(pre["tokens"], pre["batch"], pre["tflops"])
        done.append("attn_prefill")
    dec = _case(s, "attn/decode")
    if dec["size_bytes"].n_unique() >= 2:
        curve = measured.binned_curve(dec["size_bytes"], dec["gbps"])
        if len(curve.x) >= 2:
            curves["attn_decode"] = curve
            done.append("attn_decode")
    return replace(p, curves=curves)


def _host(p: HardwareProfile, s: pl.DataFrame, done: list[str]) -> HardwareProfile:
    """Measured memcpy GB/s, unless below the SSDs' total read rate: a CPU copy then
    under-reports the node's DRAM bandwidth (too few threads or one socket), so the
    datasheet figure stays and the measured one is only reported."""
    df = _case(s, "dram/memcpy")
    if df.height == 0:
        return p
    gbps = round(float(df["gbps"].max()), 3)
    if gbps <= p.ssd.count * p.ssd.read_gbps:
        return p
    done.append("dram")
    return replace(p, host=replace(p.host, dram_bw_gbps=gbps))


def _ssd(p: HardwareProfile, s: pl.DataFrame, fits: Fits, done: list[str]) -> HardwareProfile:
    seq_r, seq_w = _case(s, "ssd/seq_read"), _case(s, "ssd/seq_write")
    rand = _case(s, "ssd/rand_read").sort("size_bytes")
    if seq_r.height == 0 or rand.height == 0:
        return p
    n = p.ssd.count
    lat_s = max(1e-6, float(rand["median_s"][0]))
    sizes = [*rand["size_bytes"].to_list(), *seq_r["size_bytes"].to_list()]
    times = [*rand["median_s"].to_list(),
             *(seq_r["size_bytes"] / (seq_r["gbps"] * 1e9) + lat_s).to_list()]
    ssd = replace(
        p.ssd,
        read_gbps=round(float(seq_r["gbps"].max()) / n, 3),
        write_gbps=round(float(seq_w["gbps"].max()) / n, 3) if seq_w.height else p.ssd.write_gbps,
        read_latency_us=round(lat_s * 1e6, 2),
    )
    done.append("ssd")
    curve = measured_curve(*_dedupe(sizes, times), lat_s)
    return replace(p, ssd=ssd, curves=p.curves | {"ssd_read": curve})


def _dedupe(sizes: list[float], times: list[float]) -> tuple[list[float], list[float]]:
    """Keep the first time per size (the curve's x must be strictly increasing)."""
    seen: dict[float, float] = {}
    for n, t in zip(sizes, times, strict=True):
        seen.setdefault(n, t)
    return list(seen), list(seen.values())
