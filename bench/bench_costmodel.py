"""kvplan's step times against AIConfigurator's own per-iteration estimates (Llama-3.1-8B, tp 1).

AIConfigurator (``pip install aiconfigurator``, Apache-2.0) estimates one iteration as the
sum of its per-operation latencies, each looked up in tables measured on the GPU
(``InferenceSession.run_static``; its summary's per-op dicts): ``static_ctx`` at batch 1 and
``isl`` tokens is one prefill iteration, ``static_gen`` with ``osl = 2`` one decode iteration
of ``batch`` sequences over ``isl`` context. It bills no framework overhead per iteration, so
kvplan is compared like for like: its step time minus the ``overhead`` part
(``CostModel.step_parts``). Points: prefill 512..8192 tokens; decode batch 1..128 x context
1k..4k. Profiles: the one ``kvplan profiles import aiconfigurator`` builds from the same
tables, and the bundled datasheet profile of that GPU. Bars: imported within 5 % MAPE,
datasheet within 10 %, on prefill and on decode.

    /work/venvs/aic/bin/python bench/bench_costmodel.py [--systems h100_sxm h200_sxm]
"""

from __future__ import annotations

import argparse
import logging
import os

import numpy as np

from kvplan.cost.model import CostModel, attn_pairs
from kvplan.hardware import aiconfigurator as aic
from kvplan.hardware.profile import load_profile
from kvplan.model.spec import load_model

AIC_MODEL = "meta-llama/Meta-Llama-3.1-8B"
PREFILL = (512, 1024, 2048, 4096, 8192)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
CONTEXTS = (1024, 2048, 4096)
DATASHEET = {"h100_sxm": "h100-sxm", "h200_sxm": "h200", "b200_sxm": "b200",
             "a100_sxm": "a100-80gb", "l40s": "l40s", "rtx_pro_6000_server": "rtx-pro-6000"}
BARS = {"imported": 0.05, "datasheet": 0.10}


def aic_estimates(system: str, backend: str) -> dict[tuple, float]:
    """AIConfigurator's per-iteration seconds: ('prefill', isl) and ('decode', batch, ctx)."""
    logging.disable(logging.WARNING)
    from aiconfigurator.cli.api import cli_estimate

    out = {}
    kw = {"model_path": AIC_MODEL, "system_name": system, "backend_name": backend, "tp_size": 1}
    for isl in PREFILL:
        r = cli_estimate(mode="static_ctx", isl=isl, osl=1, batch_size=1, **kw)
        out[("prefill", isl)] = sum(r.summary.get_context_latency_dict().values()) * 1e-3
    for b in BATCHES:
        for c in CONTEXTS:
            r = cli_estimate(mode="static_gen", isl=c, osl=2, batch_size=b, **kw)
            out[("decode", b, c)] = sum(r.summary.get_generation_latency_dict().values()) * 1e-3
    return out


def kvplan_estimate(cm: CostModel, key: tuple) -> float:
    """Step seconds without the framework overhead (AIConfigurator bills none)."""
    if key[0] == "prefill":
        parts = cm.step_parts(key[1], attn_pairs(key[1], 0), 0, 0)
    else:
        parts = cm.step_parts(0, 0, key[1], key[1] * key[2])
    return sum(parts.values()) - parts["overhead"]


def mape(cm: CostModel, ref: dict[tuple, float], phase: str) -> tuple[float, float]:
    """(MAPE, worst signed error) over the points of one phase."""
    errs = np.array([kvplan_estimate(cm, k) / v - 1 for k, v in ref.items() if k[0] == phase])
    return float(np.mean(np.abs(errs))), float(errs[np.argmax(np.abs(errs))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=["h100_sxm", "h200_sxm"])
    ap.add_argument("--backend", default="vllm")
    args = ap.parse_args()
    spec = load_model("llama-3.1-8b")
    print(f"aiconfigurator-core {aic.package_version()}, backend {args.backend}, llama-3.1-8b "
          f"tp 1; load average {os.getloadavg()[0]:.2f}")
    print(f"{'system':>20} {'profile':>28} {'phase':>8} {'MAPE':>7} {'worst':>7} {'bar':>5}")
    failed = []
    for system in args.systems:
        ref = aic_estimates(system, args.backend)
        profiles = {"imported": aic.import_profile(aic.resolve(system, args.backend),
                                                   today="bench")}
        if system in DATASHEET:
            profiles["datasheet"] = load_profile(DATASHEET[system])
        for kind, profile in profiles.items():
            cm = CostModel.build(spec, profile, tp=1)
            for phase in ("prefill", "decode"):
                err, worst = mape(cm, ref, phase)
                ok = err <= BARS[kind]
                failed += [] if ok else [f"{system} {kind} {phase}"]
                print(f"{system:>20} {profile.name:>28} {phase:>8} {err:7.2%} {worst:+7.2%} "
                      f"{'ok' if ok else 'MISS':>5}")
    print("all within their bars" if not failed else f"outside the bar: {', '.join(failed)}")


if __name__ == "__main__":
    main()
