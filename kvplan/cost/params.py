"""The free constants of a profile's cost model, for fitting to a measured engine run.

A datasheet profile's step times come from peaks (fixed: the GPU's specification) times
efficiencies, launch costs and a framework overhead (free: fitted defaults). A calibrated or
imported profile measures most operations, so only what its curves do not replace stays free
(always the framework overhead, which no kernel table holds). ``kvplan validate --fit``
searches these::

    params = free_parameters(profile)        # name -> Parameter(value, lo, hi)
    fitted = with_parameters(profile, {"gpu.step_overhead_us": 850.0,
                                       "ops.overhead_per_seq_us": 12.0},
                             source="fitted by kvplan validate --fit to run X")

Names are ``section.field`` as in the profile TOML (docs/hardware-profiles.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvplan.errors import KvplanError
from kvplan.hardware.profile import HardwareProfile

FORM_CONSTANTS = {
    "gpu.compute_efficiency_frac": "gemm", "gpu.hbm_efficiency_frac": "gemm",
    "ops.gemm_launch_us": "gemm",
    "ops.attn_prefill_frac": "attn_prefill", "ops.attn_prefill_half_tokens": "attn_prefill",
    "ops.attn_decode_frac": "attn_decode", "ops.attn_decode_launch_us": "attn_decode",
    "ops.elementwise_frac": "hbm", "ops.elementwise_launch_us": "hbm",
    "ops.comm_frac": "allreduce", "ops.comm_latency_us": "allreduce",
}
"""Datasheet-form constant -> the measured curve that makes it irrelevant."""
ALWAYS_FREE = ("gpu.step_overhead_us", "ops.overhead_per_seq_us", "ops.attn_prefill_extra_us")
"""Not replaced by any curve (framework costs and the fused extras around attention)."""


@dataclass(frozen=True)
class Parameter:
    """One free constant: its current value and the range a fit may search."""

    value: float
    lo: float
    hi: float


def _bounds(name: str) -> tuple[float, float]:
    if name.endswith("_frac"):
        return 0.01, 1.0
    if name.endswith("_tokens"):
        return 1.0, 1e6
    return 0.0, 1e5   # microseconds


def free_parameters(profile: HardwareProfile) -> dict[str, Parameter]:
    """The constants of ``profile`` a fit may change, with their values and search ranges
    (datasheet: every form constant; calibrated / imported: those no curve replaces)."""
    names = [n for n, curve in FORM_CONSTANTS.items() if curve not in profile.curves]
    out = {}
    for name in (*names, *ALWAYS_FREE):
        section, field = name.split(".")
        out[name] = Parameter(float(getattr(getattr(profile, section), field)), *_bounds(name))
    return out


def with_parameters(profile: HardwareProfile, values: dict[str, float],
                    source: str | None = None) -> HardwareProfile:
    """``profile`` with free constants replaced (each checked against free_parameters);
    ``source`` becomes their entry under [sources]."""
    free = free_parameters(profile)
    changes: dict[str, dict[str, float]] = {"gpu": {}, "ops": {}}
    for name, value in values.items():
        if name not in free:
            raise KvplanError(f"'{name}' is not a free constant of profile {profile.name} "
                              f"(free: {', '.join(free)})")
        p = free[name]
        if not p.lo <= value <= p.hi:
            raise KvplanError(f"{name} = {value!r} is outside [{p.lo:g}, {p.hi:g}]")
        section, field = name.split(".")
        changes[section][field] = float(value)
    sources = dict(profile.sources)
    if source is not None:
        sources |= dict.fromkeys(values, source)
    return replace(profile, gpu=replace(profile.gpu, **changes["gpu"]),
                   ops=replace(profile.ops, **changes["ops"]), sources=sources)
