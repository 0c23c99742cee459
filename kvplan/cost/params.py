"""The free constants of a profile's cost model, for fitting to a measured engine run.

A datasheet profile's step times come from peaks (fixed: the GPU's specification) times
efficiencies, launch costs and a framework overhead (free: fitted defaults). A calibrated or
imported profile measures most operations, so only what its curves do not replace stays free
(always the framework overhead, which no kernel table holds), plus a scale on each measured
curve. Each constant belongs to a group (GROUPS: compute, memory, link, fixed, shape), the kind
of time it sets; ``kvplan validate --fit`` searches one factor per group::

    params = free_parameters(profile)        # name -> Parameter(value, lo, hi, group)
    fitted = with_parameters(profile, {"gpu.step_overhead_us": 850.0,
                                       "ops.overhead_per_seq_us": 12.0},
                             source="fitted by kvplan validate --fit to run X")

Names are ``section.field`` as in the profile TOML (docs/hardware-profiles.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvplan.errors import KvplanError
from kvplan.hardware.profile import Curve, Grid, HardwareProfile

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
CURVE_SCALE_RANGE = (0.1, 10.0)
"""Search range of ``curves.<name>.scale``, a factor on a measured curve's speeds."""
GROUPS = {
    "compute": ("gpu.compute_efficiency_frac", "ops.attn_prefill_frac", "curves.gemm.scale",
                "curves.attn_prefill.scale"),
    "memory": ("gpu.hbm_efficiency_frac", "ops.attn_decode_frac", "ops.elementwise_frac",
               "curves.attn_decode.scale", "curves.hbm.scale"),
    "link": ("ops.comm_frac", "curves.allreduce.scale", "ops.comm_latency_us"),
    "fixed": ("gpu.step_overhead_us", "ops.overhead_per_seq_us", "ops.gemm_launch_us",
              "ops.attn_prefill_extra_us", "ops.attn_decode_launch_us",
              "ops.elementwise_launch_us"),
    "shape": ("ops.attn_prefill_half_tokens",),
}
"""What each constant sets: the time of compute-bound work, of memory streaming, of the
GPU-to-GPU link, the fixed costs of kernels and steps, or the shape of a curve. Speeds (``_frac``
and curve scales) make their work faster as they grow, times (``_us``) slower. A fit that cannot
tell constants of one group apart moves them together."""


@dataclass(frozen=True)
class Parameter:
    """One free constant: its current value, the range a fit may search, and its group."""

    value: float
    lo: float
    hi: float
    group: str
    """compute, memory, link, fixed or shape (GROUPS)."""


def _bounds(name: str) -> tuple[float, float]:
    if name.startswith("curves."):
        return CURVE_SCALE_RANGE
    if name.endswith("_frac"):
        return 0.01, 1.0
    if name.endswith("_tokens"):
        return 1.0, 1e6
    return 0.0, 1e5   # microseconds


def _group(name: str) -> str:
    return next(g for g, names in GROUPS.items() if name in names)


def free_parameters(profile: HardwareProfile) -> dict[str, Parameter]:
    """The constants of ``profile`` a fit may change, with their values, search ranges and
    groups: a datasheet profile's every form constant; a calibrated or imported one's constants
    that no curve replaces, plus ``curves.<name>.scale`` (1.0) for each measured curve the
    step model reads."""
    names = [n for n, curve in FORM_CONSTANTS.items() if curve not in profile.curves]
    out = {}
    for name in (*names, *ALWAYS_FREE):
        section, field = name.split(".")
        value = float(getattr(getattr(profile, section), field))
        out[name] = Parameter(value, *_bounds(name), _group(name))
    for curve in profile.curves:
        name = f"curves.{curve}.scale"
        if any(name in names for names in GROUPS.values()):
            out[name] = Parameter(1.0, *_bounds(name), _group(name))
    return out


def with_parameters(profile: HardwareProfile, values: dict[str, float],
                    source: str | None = None) -> HardwareProfile:
    """``profile`` with free constants replaced (each checked against free_parameters); a
    curve's scale multiplies its measured speeds. ``source`` becomes the [sources] entry of
    each replaced field (a scaled curve is recorded by the caller's provenance)."""
    free = free_parameters(profile)
    changes: dict[str, dict[str, float]] = {"gpu": {}, "ops": {}}
    curves = dict(profile.curves)
    for name, value in values.items():
        if name not in free:
            raise KvplanError(f"'{name}' is not a free constant of profile {profile.name} "
                              f"(free: {', '.join(free)})")
        p = free[name]
        if not p.lo <= value <= p.hi:
            raise KvplanError(f"{name} = {value!r} is outside [{p.lo:g}, {p.hi:g}]")
        section, field = name.split(".")[:2]
        if section == "curves":
            curves[field] = _scaled(curves[field], float(value))
        else:
            changes[section][field] = float(value)
    sources = dict(profile.sources)
    if source is not None:
        sources |= dict.fromkeys((n for n in values if not n.startswith("curves.")), source)
    return replace(profile, gpu=replace(profile.gpu, **changes["gpu"]),
                   ops=replace(profile.ops, **changes["ops"]), curves=curves, sources=sources)


def _scaled(curve: Curve | Grid, factor: float) -> Curve | Grid:
    """The curve with every measured value (a speed) multiplied by ``factor``."""
    if isinstance(curve, Grid):
        return Grid(curve.x, curve.y, tuple(tuple(v * factor for v in row) for row in curve.z))
    return Curve(curve.x, tuple(v * factor for v in curve.y))
