"""Fit the datasheet forms' efficiencies to AIConfigurator's measured kernel tables.

The datasheet profiles derive every operation's time from peaks x efficiencies
(docs/cost-model.md, "Datasheet forms"). This script fits those efficiencies, per GPU, to the
vLLM tables that AIConfigurator (``pip install aiconfigurator``, Apache-2.0) measured on real
GPUs, and pools the data-centre GPUs (h100_sxm, h200_sxm, b200_sxm, a100_sxm) into the
defaults used for GPUs without such data. Each fit minimises the relative error (log ratio)
and prints its median and 90th-percentile error:

| form | fitted | rows |
| --- | --- | --- |
| GEMM: launch + max(2mnk / (P e_c), bytes / (B e_w)) | e_c, e_w, launch | bf16, n, k >= 1024, m <= 16384 |
| prefill attention: floor + flops / (P e_a s / (s + s_half)) | e_a, s_half, floor | batch 1, head_dim 128, heads 8..64, s >= 128 |
| decode attention: launch + kv / (B e_d) | e_d, launch | head_dim 128, bf16 KV, no window, context >= 256, batch <= 512 |
| all-reduce: latency + 2 (g-1)/g x bytes / (L e_comm) | e_comm, latency | CUDA-graph rows, NVLink systems |

    /work/venvs/aic/bin/python bench/fit_datasheet.py [--backend vllm]
"""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl
from scipy.optimize import least_squares

from kvplan.hardware import aiconfigurator as aic

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="vllm")
    args = ap.parse_args()
    root = aic.systems_dir()
    print(f"aiconfigurator-core {aic.package_version()}, backend {args.backend}")
    fits = {}
    for system in SYSTEMS:
        fits[system] = fit_system(root, system, args.backend)
        for name, (p, med, p90) in fits[system].items():
            vals = ", ".join(f"{v:.4g}" for v in p)
            print(f"{system:>20} {name:>9}: {vals}  (error median {med:.1%}, p90 {p90:.1%})")
    print("pooled data-centre defaults (median of the per-GPU fits):")
    for name in ("gemm", "prefill", "decode", "allreduce"):
        ps = [fits[s][name][0] for s in DATA_CENTRE if name in fits[s]]
        print(f"{name:>9}: " + ", ".join(f"{v:.4g}" for v in np.median(ps, axis=0)))


if __name__ == "__main__":
    main()
