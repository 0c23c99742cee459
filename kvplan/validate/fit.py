"""``kvplan validate --fit``: fit a profile's free constants to the early part of a run, and
score the fitted profile on the later part it never saw (docs/validate.md).

Time split: the first ``fit_frac`` of the requests by arrival are the fit part, the rest the
held-out part. Every evaluation replays the *whole* run (the held-out requests' arrivals and
lengths are inputs that load the engine), but the objective reads only the fit part's measured
latencies; the held-out part's are read once, to score the result.

Objective: the sum of squared relative errors of the fit part's mean TTFT, TPOT and e2e.
Search: Nelder-Mead (scipy.optimize) over the parameters mapped to their bounds by a logistic
function, from the profile's own values, with a fixed initial simplex and evaluation budget:
the same run and profile always give the same fitted profile. The replay is a discrete-event
simulation, so the objective is piecewise constant in the small: a derivative-free search fits.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import minimize

from kvplan.errors import KvplanError
from kvplan.hardware.profile import HardwareProfile, load_profile, write_profile
from kvplan.validate.metrics import HEADLINE, Comparison, compare
from kvplan.validate.params import FreeParam, free_params, with_values
from kvplan.validate.run import EngineRun
from kvplan.validate.runner import Validation, replay_workload, run_validation
from kvplan.validate.settings import ReplaySettings

MAX_EVALUATIONS = 120
"""Replays one fit may run (each about 0.25 s on the bundled run)."""
SIMPLEX_STEP = 0.5
"""Initial simplex edge, in logistic units (about +-12 % of a parameter's range mid-way)."""


@dataclass(frozen=True)
class FittedParam:
    name: str
    before: float
    after: float
    unit: str
    at_bound: bool
    """The fit pushed it to (within 0.1 % of) an end of its range: the model's form may be off."""


@dataclass(frozen=True)
class FitResult:
    profile: HardwareProfile
    """The fitted profile (name ``<profile>-fit``), ready to write."""
    params: tuple[FittedParam, ...]
    fit_requests: int
    held_out_requests: int
    split_arrival_s: float
    """Arrival time of the first held-out request."""
    in_sample: Comparison
    held_out: Comparison
    evaluations: int
    validation: Validation
    """The whole run replayed on the fitted profile."""


def split_index(n: int, fit_frac: float) -> int:
    """Requests (in arrival order) in the fit part: at least 1, and at least 1 held out."""
    if not 0 < fit_frac < 1:
        raise KvplanError(f"--fit-frac must be between 0 and 1, got {fit_frac}")
    if n < 2:
        raise KvplanError(f"--fit needs at least 2 requests (1 to fit, 1 to hold out), got {n}")
    return min(max(round(n * fit_frac), 1), n - 1)


def fit_profile(run: EngineRun, settings: ReplaySettings, fit_frac: float = 0.5,
                on_eval: Callable[[int], None] | None = None) -> FitResult:
    """Fit the free constants of ``settings.profile`` to the first ``fit_frac`` of ``run``."""
    base = load_profile(settings.profile)
    params = free_params(base)
    n_fit = split_index(run.requests.height, fit_frac)
    workload = replay_workload(run, settings)
    count = [0]
    with tempfile.TemporaryDirectory(prefix="kvplan-fit-") as tmp:
        path = Path(tmp) / "profile.toml"

        def replay(values: tuple[float, ...]) -> Validation:
            write_profile(with_values(base, params, values), path)
            return run_validation(run, settings, profile=str(path), workload=workload)

        def objective(z: np.ndarray) -> float:
            count[0] += 1
            if on_eval:
                on_eval(count[0])
            part = _part(replay(_to_values(params, z)).requests, n_fit, fit=True)
            errs = [compare(part).row(m).error_frac for m in HEADLINE]
            return sum((e if e is not None else 10.0) ** 2 for e in errs)

        z0 = _to_z(params, tuple(p.get(base) for p in params))
        simplex = np.vstack([z0, z0 + SIMPLEX_STEP * np.eye(len(z0))])
        best = minimize(objective, z0, method="Nelder-Mead",
                        options={"maxfev": MAX_EVALUATIONS, "initial_simplex": simplex,
                                 "xatol": 1e-3, "fatol": 1e-7})
        values = _to_values(params, best.x)
        final = replay(values)
    fitted = with_values(base, params, values)
    return _result(run, settings, base, params, values, fitted, final, n_fit, count[0])


def _result(run: EngineRun, settings: ReplaySettings, base: HardwareProfile,
            params: tuple[FreeParam, ...], values: tuple[float, ...], fitted: HardwareProfile,
            final: Validation, n_fit: int, evaluations: int) -> FitResult:
    in_sample = compare(_part(final.requests, n_fit, fit=True))
    held_out = compare(_part(final.requests, n_fit, fit=False))
    fitted_params = tuple(
        FittedParam(p.name, p.get(base), v, p.unit,
                    at_bound=min(v - p.lo, p.hi - v) <= 0.001 * (p.hi - p.lo))
        for p, v in zip(params, values, strict=True))
    profile = _label(fitted, base, run, fitted_params, n_fit, in_sample, held_out)
    return FitResult(profile=profile, params=fitted_params, fit_requests=n_fit,
                     held_out_requests=run.requests.height - n_fit,
                     split_arrival_s=float(run.requests["arrival_s"][n_fit]),
                     in_sample=in_sample, held_out=held_out, evaluations=evaluations,
                     validation=final)


def _part(per_request: pl.DataFrame, n_fit: int, *, fit: bool) -> pl.DataFrame:
    """The fit part (request_id < n_fit, arrival order) or the held-out rest."""
    keep = pl.col("request_id") < n_fit
    return per_request.filter(keep if fit else ~keep)


def _to_z(params: tuple[FreeParam, ...], values: tuple[float, ...]) -> np.ndarray:
    """Values -> unbounded coordinates (inverse logistic; clamped 0.1 % inside the bounds)."""
    out = []
    for p, v in zip(params, values, strict=True):
        u = min(max((v - p.lo) / (p.hi - p.lo), 1e-3), 1 - 1e-3)
        out.append(math.log(u / (1 - u)))
    return np.array(out)


def _to_values(params: tuple[FreeParam, ...], z: np.ndarray) -> tuple[float, ...]:
    return tuple(float(p.lo + (p.hi - p.lo) / (1 + math.exp(-float(zi))))
                 for p, zi in zip(params, z, strict=True))


def _label(profile: HardwareProfile, base: HardwareProfile, run: EngineRun,
           params: tuple[FittedParam, ...], n_fit: int, in_sample: Comparison,
           held_out: Comparison) -> HardwareProfile:
    """Name, sources and provenance of the fitted profile: what was fitted, to what, how well."""
    where = f"kvplan validate --fit on {run.path.name}, first {n_fit} requests"
    sources = dict(base.sources)
    for p in params:
        if p.name.startswith("gpu.") and p.name in sources:
            sources[p.name] = f"fitted by {where} (was {p.before:g})"

    def errs(c: Comparison) -> str:
        return ", ".join(f"{m} {c.row(m).error_frac:+.1%}" if c.row(m).error_frac is not None
                         else f"{m} n/a" for m in HEADLINE)

    provenance = {**base.provenance, "fit": where,
                  "fit_params": ", ".join(f"{p.name} {p.before:g} -> {p.after:.6g}"
                                          for p in params),
                  "fit_in_sample_error": errs(in_sample),
                  "fit_held_out_error": f"{errs(held_out)} (last "
                                        f"{held_out.per_request.requests_compared} requests)"}
    return replace(profile, name=f"{base.name}-fit", sources=sources, provenance=provenance,
                   description=f"{base.description}; constants fitted to {run.path.name}")
