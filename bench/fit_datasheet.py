"""Fit the datasheet forms' efficiencies to measured kernel tables.

The datasheet profiles derive every operation's time from peaks x efficiencies
(docs/cost-model.md, "Datasheet forms"). This script fits those constants to kernel times
measured on real GPUs, minimising the relative error (log ratio), and prints each fit's
median and 90th-percentile error. Two sources:

- AIConfigurator (``pip install aiconfigurator``, Apache-2.0): its vLLM tables per GPU, and
  the data-centre GPUs (h100_sxm, h200_sxm, b200_sxm, a100_sxm) pooled into the defaults of
  GPUs without such data;
- ``--llmservingsim BUNDLE``: an LLMServingSim per-layer profile (MIT; a folder
  ``profiler/perf/<HW>/<model>/<variant>/`` you have, read at fit time, never copied into
  kvplan) of one model on one GPU; the peaks are the ``--base`` profile's (default: the
  bundled profile of the bundle's GPU). It also fits the elementwise and per-step constants
  (kvplan.hardware.llmservingsim) and prints the TOML lines to paste into that profile.

| form | fitted | rows |
| --- | --- | --- |
| GEMM: launch + max(2mnk / (P e_c), bytes / (B e_w)) | e_c, e_w, launch | bf16, n, k >= 1024, m <= 16384 (LLMServingSim: every weight GEMM and the LM head) |
| prefill attention: floor + flops / (P e_a s / (s + s_half)) | e_a, s_half, floor | batch 1, no history, head_dim 128, heads 8..64, s >= 128 |
| decode attention: launch + kv / (B e_d) | e_d, launch | head_dim 128, bf16 KV, no window, context >= 256, batch <= 512 |
| all-reduce: latency + 2 (g-1)/g x bytes / (L e_comm) | e_comm, latency | CUDA-graph rows, NVLink systems |

    /work/venvs/aic/bin/python bench/fit_datasheet.py [--backend vllm]
    python bench/fit_datasheet.py --llmservingsim PATH/profiler/perf/RTX4090/meta-llama/Llama-3.1-8B/bf16
"""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl
from scipy.optimize import least_squares

from kvplan.hardware import aiconfigurator as aic
from kvplan.hardware import llmservingsim as lss
from kvplan.model.spec import ModelSpec

DATA_CENTRE = ("h100_sxm", "h200_sxm", "b200_sxm", "a100_sxm")
SYSTEMS = (*DATA_CENTRE, "l40s", "rtx_pro_6000_server")


def _fit(model, x0, lo, hi, *data):
    """Least squares on log(predicted / measured); returns params, median and p90 |error|."""
    *cols, t = data

    def resid(p):
        return np.log(model(p, *cols) / t)

    res = least_squares(resid, x0, bounds=(lo, hi))
    err = np.abs(np.expm1(resid(res.x)))
    return res.x, float(np.median(err)), float(np.quantile(err, 0.9))


def gemm_rows(root, system, backend):
    src = aic.resolve(system, backend, root=root)
    df = aic._table(root / "data" / system, "gemm", src, "gemm_perf.parquet")
    d = df.filter((pl.col("gemm_dtype") == "bfloat16") & (pl.col("n") >= 1024)
                  & (pl.col("k") >= 1024) & (pl.col("m") <= 16384) & (pl.col("latency") > 0))
    m, n, k = (d[c].cast(pl.Float64).to_numpy() for c in ("m", "n", "k"))
    return m, n, k, d["latency"].to_numpy() * 1e-3


def gemm_model(p, m, n, k, flops, bw):
    ec, ew, launch_us = p
    return launch_us * 1e-6 + np.maximum(2 * m * n * k / (flops * ec),
                                         2 * (m * k + n * k + m * n) / (bw * ew))


def prefill_rows(root, system, backend):
    src = aic.resolve(system, backend, root=root)
    d = aic._attention_rows(aic._table(root / "data" / system, "attention", src,
                                       "context_attention_perf.parquet"))
    d = d.filter((pl.col("batch_size") == 1) & (pl.col("isl") >= 128)
                 & pl.col("num_heads").is_between(8, 64))
    s = d["isl"].cast(pl.Float64).to_numpy()
    flops = 4.0 * d["num_heads"].to_numpy() * 128 * s * (s + 1) / 2
    return s, flops, d["latency"].to_numpy() * 1e-3


def prefill_model(p, s, flops, peak):
    frac, half, floor_us = p
    return floor_us * 1e-6 + flops / (peak * frac * s / (s + half))


def decode_rows(root, system, backend):
    src = aic.resolve(system, backend, root=root)
    d = aic._attention_rows(aic._table(root / "data" / system, "attention", src,
                                       "generation_attention_perf.parquet"))
    d = d.filter(((pl.col("isl") + pl.col("step")) >= 256) & (pl.col("batch_size") <= 512))
    kv = (d["batch_size"] * (d["isl"] + d["step"]) * d["num_key_value_heads"]).cast(
        pl.Float64).to_numpy() * 128 * 4
    return kv, d["latency"].to_numpy() * 1e-3


def decode_model(p, kv, bw):
    frac, launch_us = p
    return launch_us * 1e-6 + kv / (bw * frac)


def allreduce_rows(root, system, backend):
    src = aic.resolve(system, backend, root=root)
    if "comm" not in src.versions:
        return None
    d = aic._table(root / "data" / system, "comm", src, "custom_allreduce_perf.parquet")
    d = d.filter(pl.col("backend").str.contains("graph") & (pl.col("latency") > 0))
    b = d["message_size"].cast(pl.Float64).to_numpy() * 2
    return d["num_gpus"].to_numpy().astype(np.float64), b, d["latency"].to_numpy() * 1e-3


def allreduce_model(p, g, b, link):
    frac, lat_us = p
    return lat_us * 1e-6 + 2 * (g - 1) / g * b / (link * frac)


def fit_system(root, system, backend):
    spec = aic.system_spec(root, system)
    flops, bw = aic._peaks(spec["gpu"])
    out = {}
    m, n, k, t = gemm_rows(root, system, backend)
    out["gemm"] = _fit(lambda p, *c: gemm_model(p, *c, flops, bw), [0.8, 0.85, 5.0],
                       [0.05, 0.05, 0.0], [1.0, 1.0, 100.0], m, n, k, t)
    s, f, t = prefill_rows(root, system, backend)
    out["prefill"] = _fit(lambda p, *c: prefill_model(p, *c, flops), [0.6, 1000.0, 10.0],
                          [0.05, 1.0, 0.0], [1.0, 1e5, 200.0], s, f, t)
    kv, t = decode_rows(root, system, backend)
    out["decode"] = _fit(lambda p, *c: decode_model(p, *c, bw), [0.9, 10.0],
                         [0.05, 0.0], [1.0, 1000.0], kv, t)
    rows = allreduce_rows(root, system, backend)
    node = spec["node"]
    intra, pcie = float(node.get("intra_node_bw", 0)), float(node.get("pcie_bw", 0))
    if rows is not None and intra > pcie:
        out["allreduce"] = _fit(lambda p, *c: allreduce_model(p, *c, intra), [0.7, 10.0],
                                [0.01, 0.0], [1.0, 1000.0], *rows)
    return out


def fit_bundle(path, model=None, base=None):
    """Every datasheet constant of the bundle's GPU, fitted to its per-layer kernel times."""
    bundle = lss.read_bundle(path)
    spec = lss.model_of(bundle, model)
    profile = lss.base_profile(bundle, base)
    s = lss.samples(bundle, spec)
    flops, bw = profile.gpu.bf16_dense_tflops * 1e12, profile.gpu.hbm_bw_gbps * 1e9
    out = {"gemm": _fit(lambda p, *c: gemm_model(p, *c, flops, bw), [0.8, 0.85, 5.0],
                        [0.05, 0.05, 0.0], [1.0, 1.0, 100.0], *s.gemm)}
    c, hist, _, f, t = s.prefill
    fresh = (hist == 0) & (c >= 128)
    out["prefill"] = _fit(lambda p, *x: prefill_model(p, *x, flops), [0.6, 1000.0, 10.0],
                          [0.05, 1.0, 0.0], [1.0, 1e5, 200.0], c[fresh], f[fresh], t[fresh])
    n, ctx, kv, t = s.decode
    keep = (ctx >= 256) & (n <= 512)
    out["decode"] = _fit(lambda p, *x: decode_model(p, *x, bw), [0.9, 10.0], [0.05, 0.0],
                         [1.0, 1000.0], kv[keep], t[keep])
    return bundle, spec, profile, s, out


def _history_error(s: lss.Samples, spec: ModelSpec, prefill, peak: float) -> tuple[float, float]:
    """Median and p90 |error| of the fitted prefill form on chunks after a history (the rows
    the fit leaves out), at kvplan's sequence length s = history + chunk."""
    c, hist, _, f, t = s.prefill
    sel = hist > 0
    frac, half, floor_us = prefill[0]
    seq = c[sel] + hist[sel]
    err = np.abs((floor_us * 1e-6 + f[sel] / (peak * frac * seq / (seq + half))) / t[sel] - 1)
    return float(np.median(err)), float(np.quantile(err, 0.9))


def report_bundle(path, model=None, base=None) -> None:
    bundle, spec, profile, s, fits = fit_bundle(path, model, base)
    meta = bundle.meta
    print(f"LLMServingSim bundle {path}: {meta.get('gpu')}, {meta['model']} {meta['variant']}, "
          f"tp {sorted(bundle.tables)}, vLLM {meta.get('vllm_version')}; peaks of {profile.name}")
    for name, (p, med, p90) in fits.items():
        vals = ", ".join(f"{v:.4g}" for v in p)
        print(f"{name:>12}: {vals}  (error median {med:.1%}, p90 {p90:.1%})")
    med, p90 = _history_error(s, spec, fits["prefill"], profile.gpu.bf16_dense_tflops * 1e12)
    print(f"{'':>12}  prefill form on chunks after a history (not fitted): error median "
          f"{med:.1%}, p90 {p90:.1%}")
    frac, launch = lss.elementwise_constants(s, profile.gpu.hbm_bw_gbps * 1e9)
    overhead, per_seq = lss.overhead_constants(s)
    print(f"{'elementwise':>12}: frac {frac:.4g}, launch {launch:.4g} us")
    print(f"{'step':>12}: overhead {overhead:.4g} us + {per_seq:.4g} us per sequence")
    (ec, ew, gl), (ea, half, floor_us), (ed, dl) = (fits[k][0] for k in
                                                     ("gemm", "prefill", "decode"))
    print("\n[gpu]\n"
          f"compute_efficiency_frac = {ec:.3f}\nhbm_efficiency_frac = {ew:.3f}\n"
          f"step_overhead_us = {overhead:.1f}\n[ops]\n"
          f"gemm_launch_us = {gl:.2f}\nattn_prefill_frac = {ea:.3f}\n"
          f"attn_prefill_half_tokens = {half:.0f}\nattn_prefill_extra_us = {floor_us:.2f}\n"
          f"attn_decode_frac = {ed:.3f}\nattn_decode_launch_us = {dl:.2f}\n"
          f"elementwise_frac = {frac:.3f}\nelementwise_launch_us = {launch:.2f}\n"
          f"overhead_per_seq_us = {per_seq:.3f}")


def report_aiconfigurator(backend: str) -> None:
    root = aic.systems_dir()
    print(f"aiconfigurator-core {aic.package_version()}, backend {backend}")
    fits = {}
    for system in SYSTEMS:
        fits[system] = fit_system(root, system, backend)
        for name, (p, med, p90) in fits[system].items():
            vals = ", ".join(f"{v:.4g}" for v in p)
            print(f"{system:>20} {name:>9}: {vals}  (error median {med:.1%}, p90 {p90:.1%})")
    print("pooled data-centre defaults (median of the per-GPU fits):")
    for name in ("gemm", "prefill", "decode", "allreduce"):
        ps = [fits[s][name][0] for s in DATA_CENTRE if name in fits[s]]
        print(f"{name:>9}: " + ", ".join(f"{v:.4g}" for v in np.median(ps, axis=0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--llmservingsim", metavar="BUNDLE",
                    help="fit an LLMServingSim profile bundle instead of AIConfigurator's tables")
    ap.add_argument("--model", help="model preset of the bundle (default: its meta.yaml model)")
    ap.add_argument("--base", help="profile whose peaks the forms use (default: the bundle GPU's)")
    args = ap.parse_args()
    if args.llmservingsim:
        report_bundle(args.llmservingsim, args.model, args.base)
    else:
        report_aiconfigurator(args.backend)


if __name__ == "__main__":
    main()
