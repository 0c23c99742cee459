"""`kvplan calibrate --check PROFILE`: re-measure a few points, compare with the profile.

Points (sizes between the sweep's knots, so interpolation is tested too): pinned H2D/D2H at
192 KiB, 3 MiB and 96 MiB against ``profile.link(...).transfer_time_s``; a 96 MiB device copy
against ``curves.hbm`` (or peak x efficiency); one layer prefill and one decode of ``--model``
against the cost model (``CostModel.step_time_s`` / num_layers); DRAM memcpy at 48 MiB against
``host.dram_bw_gbps``; an SSD sequential read against ``link('ssd_read')``.

Rows: ``family``, ``point``, ``measured_s``, ``predicted_s``, ``rel_err`` = predicted /
measured - 1. Per family: the median and largest absolute relative error.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from kvplan.calibrate.run import CalibrateConfig, check_config, detect_device, family_steps
from kvplan.calibrate.session import make_session
from kvplan.calibrate.sweeps import SWEEPS, MiB, Sweep
from kvplan.cost.model import CostModel, attn_pairs
from kvplan.hardware.profile import HardwareProfile, load_profile
from kvplan.model.spec import load_model

CHECK_SWEEP: Sweep = replace(
    SWEEPS["quick"],
    link_sizes=(192 * 1024, 3 * MiB, 96 * MiB),
    hbm_sizes=(48 * MiB,),
    prefill_tokens=(1536,),
    decode_batches=(32,),
    decode_contexts=(4096,),
    host_sizes=(48 * MiB,),
    matmul_sizes=(),
    cpu_matmul_sizes=(),
)


def check_profile(cfg: CalibrateConfig, profile_name: str) -> tuple[list[dict], list[dict]]:
    """Measure the check points and return (rows per point, rows per family)."""
    check_config(cfg)
    profile = load_profile(profile_name)
    spec = load_model(cfg.model)
    device = detect_device()
    sess = make_session(device, CHECK_SWEEP.repeats, cfg.max_gpu_mem_frac)
    families = [f for f in ("links", "hbm", "compute", "host", "ssd") if f in cfg.only]
    if device != "cuda":
        families = [f for f in families if f in ("host", "ssd")]
    folder = cfg.ssd_path or cfg.out_dir
    if "ssd" in families and folder is None:
        families.remove("ssd")
    steps = family_steps(replace(cfg, only=tuple(families), ssd_bytes=min(cfg.ssd_bytes, 256 * MiB)),
                         sess, CHECK_SWEEP, spec, folder)
    for step in steps.values():
        step()
    cost = CostModel.build(spec, profile) if device == "cuda" else None
    rows = prediction_rows(sess.log.summary(), profile, cost)
    return rows, family_errors(rows)


def prediction_rows(s: pl.DataFrame, p: HardwareProfile, cost: CostModel | None) -> list[dict]:
    """Measured vs predicted seconds for every checked point the profile can predict."""
    rows = []
    for r in s.iter_rows(named=True):
        pred = _predict(r, p, cost)
        if pred is not None:
            rows.append({"family": r["family"], "point": f"{r['case']} {_label(r)}",
                         "measured_s": r["median_s"], "predicted_s": pred,
                         "rel_err": pred / r["median_s"] - 1.0})
    return rows


def _label(r: dict) -> str:
    if r["case"].startswith("layer/"):
        return f"batch {r['batch']} tokens {r['tokens']} context {r['context']}"
    return f"{r['size_bytes']:,} B"


def _predict(r: dict, p: HardwareProfile, cost: CostModel | None) -> float | None:
    case, n = r["case"], r["size_bytes"]
    if case in ("h2d/pinned/alone", "d2h/pinned/alone"):
        return p.link(case[:3]).transfer_time_s(n)
    if case == "d2d/copy":
        hbm = p.curves.get("hbm")
        bw = hbm(n) if hbm else p.gpu.hbm_bw_gbps * p.gpu.hbm_efficiency_frac
        return n / (bw * 1e9)
    if case == "dram/memcpy":
        return n / (p.host.dram_bw_gbps * 1e9)
    if case == "ssd/seq_read":
        return p.link("ssd_read").transfer_time_s(n)
    if cost is not None and case == "layer/prefill":
        t = r["tokens"]
        return cost.step_time_s(t, attn_pairs(t, 0), 0, 0) / cost.spec.num_layers
    if cost is not None and case == "layer/decode":
        b, c = r["batch"], r["context"]
        return cost.step_time_s(0, 0, b, b * c) / cost.spec.num_layers
    return None


def family_errors(rows: list[dict]) -> list[dict]:
    """Median and largest absolute relative error per family."""
    out = []
    for fam in dict.fromkeys(r["family"] for r in rows):
        err = np.abs([r["rel_err"] for r in rows if r["family"] == fam])
        out.append({"family": fam, "points": int(err.size),
                    "median_abs_rel_err": float(np.median(err)), "max_abs_rel_err": float(err.max())})
    return out
