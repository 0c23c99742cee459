"""Headroom of prefetch policies against the oracle bound (docs/simulation.md, "Prefetch").

The oracle's just-in-time loads say how much load stall any prefetch could avoid on the same
links: ``avoidable = stall(none) - stall(oracle)``. A policy captures the share of it that it
removes. Worked example: none 174 s, lookahead 158 s, oracle 8 s -> avoidable 166 s,
lookahead captures (174 - 158) / 166 = 9.6 %. The share is n/a when nothing is avoidable; it
is negative when the policy stalls more than none.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.sim.results import ReplayResult


@dataclass(frozen=True)
class Headroom:
    """One prefetch policy's stall against ``none`` and the oracle bound."""

    variant: str
    prefetch: str
    load_stall_s: float
    captured_frac: float | None
    """Share of the oracle's stall reduction (none -> oracle) this policy captures; None
    when the oracle avoids nothing (n/a)."""
    staged_used_bytes: int
    """Bytes staging copied into HBM for requests then admitted."""
    staged_unused_bytes: int
    """Bytes staging copied into HBM that no request used (stages dropped at their TTL)."""


def captured_frac(none_s: float, policy_s: float, oracle_s: float) -> float | None:
    """(none - policy) / (none - oracle); None when none - oracle <= 0.
    Example: (174, 158, 8) -> 16 / 166 = 0.0964."""
    avoidable = none_s - oracle_s
    return None if avoidable <= 0.0 else (none_s - policy_s) / avoidable


def headroom(results: list[tuple[str, ReplayResult]]) -> list[Headroom]:
    """Per variant, its capture of the oracle's stall reduction; needs one variant with
    prefetch ``none`` and one with ``oracle`` among ``results`` (else [])."""
    stall = {r.config.prefetch: _stall(r) for _, r in results}
    if "none" not in stall or "oracle" not in stall:
        return []
    out = []
    for name, r in results:
        tm = r.run.timing
        out.append(Headroom(name, r.config.prefetch, _stall(r),
                            captured_frac(stall["none"], _stall(r), stall["oracle"]),
                            tm.staged_used_bytes if tm else 0,
                            tm.staged_unused_bytes if tm else 0))
    return out


def _stall(r: ReplayResult) -> float:
    return r.run.timing.load_stall_total_s if r.run.timing else 0.0
