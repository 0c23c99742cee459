"""How far kvplan is from a real engine run, and how long finding out takes.

Run: python bench/bench_validate.py [RUN] [--profile P]   (default: the bundled vLLM 0.19.0
RTX 4090 run on the bundled rtx-4090 profile). Prints the headline errors of the profile, then
of the profile fitted on the first half of the run, in-sample and on the held-out second half
(docs/validate.md), with the wall time of one replay and of the fit, and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from kvplan.validate.fit import fit_profile
from kvplan.validate.metrics import HEADLINE, Comparison
from kvplan.validate.read import read_run
from kvplan.validate.runner import replay_workload, run_validation
from kvplan.validate.settings import Overrides, resolve


def errors(c: Comparison) -> str:
    return "  ".join(f"{m.removesuffix('_ms')} {c.row(m).error_frac:+.1%}" for m in HEADLINE)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", nargs="?", type=Path)
    parser.add_argument("--profile")
    args = parser.parse_args()
    run = read_run(args.run)
    settings = resolve(run, Overrides(profile=args.profile))
    workload = replay_workload(run, settings)
    start = time.perf_counter()
    base = run_validation(run, settings, workload=workload)
    replay_s = time.perf_counter() - start
    print(f"{run.path.name}: {run.requests.height} requests, {settings.model} on "
          f"{settings.profile}; load average {os.getloadavg()[0]:.2f}")
    print(f"profile as given:          {errors(base.comparison)}   (one replay {replay_s:.2f} s)")
    start = time.perf_counter()
    fit = fit_profile(run, settings)
    fit_s = time.perf_counter() - start
    print(f"fitted, in-sample:         {errors(fit.in_sample)}   ({fit.fit_requests} requests)")
    print(f"fitted, held-out:          {errors(fit.held_out)}   ({fit.held_out_requests} "
          f"requests; fit {fit.evaluations} replays in {fit_s:.1f} s)")
    print("fitted constants:          " + ", ".join(f"{p.name} {p.before:g} -> {p.after:.4g}"
                                                   for p in fit.params))


if __name__ == "__main__":
    main()
