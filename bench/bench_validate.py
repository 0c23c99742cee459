"""How far kvplan is from a real engine run, and how long finding out takes.

Run: python bench/bench_validate.py [RUN] [--profile P ...] [--no-fit]   (default: the bundled
vLLM 0.19.0 RTX 4090 run on the bundled rtx-4090 profile). For each profile, prints the
headline errors (TTFT, TPOT, e2e means) and the per-request median |errors| of `kvplan
validate`, then of the profile fitted on the first half of the run (`kvplan validate --fit`),
in-sample and on the held-out second half (docs/validate.md), with the wall time of one replay
and of the fit, and the machine's load. Bars: datasheet means within 10 %, held-out means
within 5 % after the fit.
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
    means = "  ".join(f"{m.removesuffix('_mean_ms')} {c.row(m).error_frac:+.1%}"
                      for m in HEADLINE)
    pr = c.per_request
    medians = "/".join(f"{v:.1%}" for v in (pr.ttft_median_abs_error_frac,
                                             pr.tpot_median_abs_error_frac,
                                             pr.e2e_median_abs_error_frac))
    return f"{means}   per-request median |error| TTFT/TPOT/e2e {medians}"


def bench(run, profile: str | None, fit: bool) -> None:
    settings = resolve(run, Overrides(profile=profile))
    workload = replay_workload(run, settings)
    start = time.perf_counter()
    base = run_validation(run, settings, workload=workload)
    replay_s = time.perf_counter() - start
    print(f"{settings.profile}: {errors(base.comparison)}   (one replay {replay_s:.2f} s)")
    if not fit:
        return
    start = time.perf_counter()
    result = fit_profile(run, settings)
    fit_s = time.perf_counter() - start
    print(f"  fitted, in-sample:  {errors(result.in_sample)}   ({result.fit_requests} requests)")
    print(f"  fitted, held-out:   {errors(result.held_out)}   ({result.held_out_requests} "
          f"requests; fit {result.evaluations} replays in {fit_s:.1f} s)")
    print("  factors: " + ", ".join(f"{p.name.removeprefix('factor.')} {p.after:.4g}"
                                    for p in result.params if p.name.startswith("factor.")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", nargs="?", type=Path)
    parser.add_argument("--profile", action="append",
                        help="profile name or TOML (repeat to compare; default: the run's GPU)")
    parser.add_argument("--no-fit", action="store_true", help="skip --fit")
    args = parser.parse_args()
    run = read_run(args.run)
    print(f"{run.path.name}: {run.requests.height} requests; load average "
          f"{os.getloadavg()[0]:.2f}")
    for profile in args.profile or [None]:
        bench(run, profile, not args.no_fit)


if __name__ == "__main__":
    main()
