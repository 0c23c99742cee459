"""``kvplan validate --fit``: fit a profile's free constants to the early part of a run, and
score the fitted profile on the later part it never saw (docs/validate.md).

Time split: the first ``fit_frac`` of the requests by arrival are the fit part, the rest the
held-out part. Every evaluation replays the *whole* run (the held-out requests' arrivals and
lengths are inputs that load the engine), but the objective reads only the fit part's measured
latencies; the held-out part's are read once, to score the result.

What moves: every free constant of the profile (kvplan.cost.params.free_parameters), through
one factor per group of constants that set the same kind of time: compute, memory streaming,
fixed costs, and (tp or ep > 1) the GPU-to-GPU link. A factor f makes its group's work f times
faster: speeds (efficiencies, curve scales) x f, times (launches, overheads) / f, each clipped
to its own range (then flagged as at a bound). The three means the objective reads (TTFT, TPOT,
e2e) identify about three such quantities and no more: a fit of a dozen constants to them
would be underdetermined and would not land twice on the same values. ``shape`` constants
(prefill attention's half-speed length) are held: means of a few hundred requests cannot see
a curve's shape.

Objective: the sum of squared relative errors of the fit part's mean TTFT, TPOT and e2e.
Search: Nelder-Mead (scipy.optimize) over the log factors mapped into [1/32, 32] by a logistic
function, from 1 (the profile as it is), with a fixed initial simplex and evaluation budget:
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

from kvplan.cost.params import Parameter, free_parameters, with_parameters
from kvplan.errors import KvplanError
from kvplan.hardware.profile import HardwareProfile, load_profile, write_profile
from kvplan.validate.metrics import HEADLINE, Comparison, compare
from kvplan.validate.run import EngineRun
from kvplan.validate.runner import Validation, replay_workload, run_validation
from kvplan.validate.settings import ReplaySettings

MAX_EVALUATIONS = 120
"""Replays one fit may run (each about 0.25 s on the bundled run)."""
SIMPLEX_STEP = 0.5
"""Initial simplex edge, in logistic units (about x1.9 on a factor mid-way)."""
FACTOR_RANGE = 32.0
"""A group's factor is searched in [1 / FACTOR_RANGE, FACTOR_RANGE]."""
FITTED_GROUPS = ("compute", "memory", "fixed", "link")
"""Groups of kvplan.cost.params.GROUPS the fit moves (``link`` only for tp or ep > 1)."""


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
    """Every constant the fit moved (``factor.<group>`` first: each group's factor)."""
    fit_requests: int
    held_out_requests: int
    split_arrival_s: float
    """Arrival time of the first held-out request."""
    in_sample: Comparison
    held_out: Comparison
    evaluations: int
    validation: Validation
    """The whole run replayed on the fitted profile."""


@dataclass(frozen=True)
class Groups:
    """The fit's search axes: per group, its constants (name -> Parameter)."""

    members: dict[str, dict[str, Parameter]]

    @classmethod
    def of(cls, profile: HardwareProfile, link: bool = False) -> Groups:
        """The groups of ``profile``'s free constants the fit moves (``link``: the layout
        moves data between GPUs, tp or ep > 1)."""
        free = free_parameters(profile)
        wanted = [g for g in FITTED_GROUPS if g != "link" or link]
        members = {g: {n: p for n, p in free.items() if p.group == g} for g in wanted}
        return cls({g: m for g, m in members.items() if m})

    def values(self, factors: tuple[float, ...]) -> dict[str, float]:
        """Each constant with its group's factor applied (speeds x f, times / f: f > 1 makes
        the group's work faster), clipped to its own range."""
        return {n: min(max(v, self.all[n].lo), self.all[n].hi)
                for n, v in self.unclipped(factors).items()}

    def unclipped(self, factors: tuple[float, ...]) -> dict[str, float]:
        out = {}
        for f, params in zip(factors, self.members.values(), strict=True):
            out |= {n: p.value / f if n.endswith("_us") else p.value * f
                    for n, p in params.items()}
        return out

    @property
    def all(self) -> dict[str, Parameter]:
        return {n: p for params in self.members.values() for n, p in params.items()}


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
    groups = Groups.of(base, link=settings.tp > 1 or settings.ep > 1)
    if not groups.members:
        raise KvplanError(f"--fit: profile {base.name} has no free constant to fit")
    n_fit = split_index(run.requests.height, fit_frac)
    workload = replay_workload(run, settings)
    count = [0]
    with tempfile.TemporaryDirectory(prefix="kvplan-fit-") as tmp:
        path = Path(tmp) / "profile.toml"

        def replay(factors: tuple[float, ...]) -> Validation:
            write_profile(with_parameters(base, groups.values(factors)), path)
            return run_validation(run, settings, profile=str(path), workload=workload)

        def objective(z: np.ndarray) -> float:
            count[0] += 1
            if on_eval:
                on_eval(count[0])
            part = _part(replay(_factors(z)).requests, n_fit, fit=True)
            errs = [compare(part).row(m).error_frac for m in HEADLINE]
            return sum((e if e is not None else 10.0) ** 2 for e in errs)

        z0 = np.zeros(len(groups.members))
        simplex = np.vstack([z0, z0 + SIMPLEX_STEP * np.eye(len(z0))])
        best = minimize(objective, z0, method="Nelder-Mead",
                        options={"maxfev": MAX_EVALUATIONS, "initial_simplex": simplex,
                                 "xatol": 1e-3, "fatol": 1e-7})
        factors = _factors(best.x)
        final = replay(factors)
    return _result(run, base, groups, factors, final, n_fit, count[0])


def _result(run: EngineRun, base: HardwareProfile, groups: Groups, factors: tuple[float, ...],
            final: Validation, n_fit: int, evaluations: int) -> FitResult:
    in_sample = compare(_part(final.requests, n_fit, fit=True))
    held_out = compare(_part(final.requests, n_fit, fit=False))
    where = f"kvplan validate --fit on {run.path.name}, first {n_fit} requests"
    values, raw = groups.values(factors), groups.unclipped(factors)
    params = [FittedParam(f"factor.{g}", 1.0, f, "x",
                          at_bound=abs(abs(math.log(f)) - math.log(FACTOR_RANGE)) < 1e-3)
              for g, f in zip(groups.members, factors, strict=True)]
    params += [FittedParam(n, p.value, values[n], _unit(n), at_bound=values[n] != raw[n])
               for n, p in groups.all.items()]
    fitted = with_parameters(base, values, source=f"fitted by {where}")
    profile = _label(fitted, base, run, where, tuple(params), in_sample, held_out)
    return FitResult(profile=profile, params=tuple(params), fit_requests=n_fit,
                     held_out_requests=run.requests.height - n_fit,
                     split_arrival_s=float(run.requests["arrival_s"][n_fit]),
                     in_sample=in_sample, held_out=held_out, evaluations=evaluations,
                     validation=final)


def _unit(name: str) -> str:
    return "us" if name.endswith("_us") else "tokens" if name.endswith("_tokens") else \
        "fraction" if name.endswith("_frac") else "x"


def _part(per_request: pl.DataFrame, n_fit: int, *, fit: bool) -> pl.DataFrame:
    """The fit part (request_id < n_fit, arrival order) or the held-out rest."""
    keep = pl.col("request_id") < n_fit
    return per_request.filter(keep if fit else ~keep)


def _factors(z: np.ndarray) -> tuple[float, ...]:
    """Unbounded coordinates -> factors in [1 / FACTOR_RANGE, FACTOR_RANGE] (logistic in the
    log factor; 0 -> 1)."""
    span = math.log(FACTOR_RANGE)
    return tuple(math.exp(span * (2 / (1 + math.exp(-float(zi))) - 1)) for zi in z)


def _label(profile: HardwareProfile, base: HardwareProfile, run: EngineRun, where: str,
           params: tuple[FittedParam, ...], in_sample: Comparison,
           held_out: Comparison) -> HardwareProfile:
    """Name and provenance of the fitted profile: what was fitted, to what, how well."""

    def errs(c: Comparison) -> str:
        return ", ".join(f"{m} {c.row(m).error_frac:+.1%}" if c.row(m).error_frac is not None
                         else f"{m} n/a" for m in HEADLINE)

    provenance = {**base.provenance, "fit": where,
                  "fit_params": ", ".join(f"{p.name} {p.before:g} -> {p.after:.6g}"
                                          for p in params),
                  "fit_in_sample_error": errs(in_sample),
                  "fit_held_out_error": f"{errs(held_out)} (last "
                                        f"{held_out.per_request.requests_compared} requests)"}
    return replace(profile, name=f"{base.name}-fit", provenance=provenance,
                   description=f"{base.description}; constants fitted to {run.path.name}")
