"""The free constants of a hardware profile that ``kvplan validate --fit`` may move.

One place names them, their bounds and how a value is put into a profile, so the fit knows
nothing of the profile's schema. Today's cost model (docs/cost-model.md) has three:

- achieved compute: ``gpu.compute_efficiency_frac`` (datasheet) or a scale on the measured
  ``compute`` curve (calibrated);
- achieved HBM bandwidth: ``gpu.hbm_efficiency_frac`` or a scale on the ``hbm`` curve;
- ``gpu.step_overhead_us``: the fixed cost of one engine iteration.

A new cost-model constant becomes fittable by adding one :class:`FreeParam` here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kvplan.hardware.profile import Curve, HardwareProfile


@dataclass(frozen=True)
class FreeParam:
    """One fittable constant: a ``[gpu]`` field, or a factor on a measured curve's values."""

    name: str
    """``gpu.<field>`` or ``curves.<name>.scale``."""
    lo: float
    hi: float
    unit: str

    def get(self, profile: HardwareProfile) -> float:
        """The value in ``profile`` (a curve's scale is 1 in the profile it came from)."""
        section, key = self._parts
        return getattr(profile.gpu, key) if section == "gpu" else 1.0

    def put(self, profile: HardwareProfile, value: float) -> HardwareProfile:
        """``profile`` with this constant set to ``value`` (a curve's values multiplied)."""
        section, key = self._parts
        if section == "gpu":
            return dataclasses.replace(profile, gpu=dataclasses.replace(profile.gpu,
                                                                        **{key: float(value)}))
        curve = profile.curves[key]
        scaled = Curve(curve.x, tuple(float(y * value) for y in curve.y))
        return dataclasses.replace(profile, curves={**profile.curves, key: scaled})

    @property
    def _parts(self) -> tuple[str, str]:
        section, key = self.name.split(".")[:2]
        return section, key


def free_params(profile: HardwareProfile) -> tuple[FreeParam, ...]:
    """The constants of ``profile`` the step-time model uses, with physical bounds."""
    out = []
    for curve, field in (("compute", "compute_efficiency_frac"), ("hbm", "hbm_efficiency_frac")):
        if curve in profile.curves:
            out.append(FreeParam(f"curves.{curve}.scale", 0.2, 5.0, "x"))
        else:
            out.append(FreeParam(f"gpu.{field}", 0.05, 1.0, "fraction"))
    out.append(FreeParam("gpu.step_overhead_us", 0.0, 50_000.0, "us"))
    return tuple(out)


def with_values(profile: HardwareProfile, params: tuple[FreeParam, ...],
                values: tuple[float, ...]) -> HardwareProfile:
    """``profile`` with every parameter set to its value."""
    for param, value in zip(params, values, strict=True):
        profile = param.put(profile, value)
    return profile
