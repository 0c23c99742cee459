"""Profile TOML -> HardwareProfile, with one-line errors naming the file and the field.

Checks: TOML syntax, schema version, unknown / missing fields (with a hint when only the unit
suffix is wrong), types, value ranges, cross-field sanity (achieved <= nominal, SSD slower
than HBM, ...), a source for every number of a datasheet profile, curves and provenance of a
calibrated one.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from kvplan.errors import InputError
from kvplan.hardware.profile import (
    CURVE_AXES,
    GRID_AXES,
    KINDS,
    OPTIONAL_SECTIONS,
    SCHEMA_VERSION,
    SECTIONS,
    Curve,
    Grid,
    HardwareProfile,
    section_fields,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_LEVEL = {"schema_version": int, "name": str, "kind": str, "description": str}
TABLES = set(SECTIONS) | set(OPTIONAL_SECTIONS) | {"curves", "provenance", "sources"}
UNITS = {"gib": "GiB", "gbps": "GB/s", "us": "microseconds", "tflops": "TFLOP/s",
         "bytes": "bytes", "frac": "a fraction 0..1", "dwpd": "drive writes per day"}
UNIT_LIKE = set(UNITS) | {"b", "kb", "kib", "mb", "mib", "gb", "tb", "tib", "mbps", "gbs", "tbps",
                          "s", "ms", "ns", "pflops", "gflops", "pct", "percent", "tbw"}
"""Suffixes that look like a unit: an unknown field ending in one gets a 'wrong unit' hint."""
RANGES = {
    "count": (1, 1024), "pcie_gen": (0, 7), "pcie_lanes": (0, 32),
    "hbm_gib": (1, 4096), "dram_gib": (0, 1 << 20), "drive_capacity_gib": (0, 1 << 20),
    "hbm_bw_gbps": (10, 100_000), "dram_bw_gbps": (1, 100_000), "nvlink_gbps": (0, 10_000),
    "bf16_dense_tflops": (0.001, 100_000), "fp8_dense_tflops": (0, 100_000),
    "endurance_dwpd": (0, 1000), "half_bw_bytes": (0, 1 << 40),
}
"""Plausible (min, max) per field; other numbers: _frac in (0, 1], the rest >= 0 and < 1e7."""


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax and read errors become one-line InputErrors."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as exc:  # TOMLDecodeError, or an integer of over 4,300 digits
        raise InputError(path, f"not valid TOML ({str(exc)[:200]})") from None
    except RecursionError:
        raise InputError(path, "not valid TOML (nested too deeply)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read ({exc})") from None


def parse_profile_file(path: Path) -> HardwareProfile:
    """Read, validate and build a profile from a TOML file."""
    return parse_profile(read_toml(path), path)


def parse_profile(data: dict[str, Any], path: Path | str) -> HardwareProfile:
    """Validate parsed TOML and build the profile (InputError naming file and field)."""
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(path, f"schema_version {version!r:.40} is not supported "
                         f"(this kvplan reads schema_version = {SCHEMA_VERSION})",
                         field="schema_version")
    check_keys(path, "", data, set(TOP_LEVEL) | TABLES, required=set(TOP_LEVEL))
    top = {k: typed_value(path, k, data[k], t) for k, t in TOP_LEVEL.items()}
    if top["kind"] not in KINDS:
        raise InputError(path, "expected " + " or ".join(f'"{k}"' for k in KINDS), field="kind")
    sections = {s: _section(path, s, data.get(s)) for s in SECTIONS}
    sections |= {s: _section(path, s, data[s], optional=True)
                 for s in OPTIONAL_SECTIONS if s in data}
    profile = HardwareProfile(
        **top, **sections,
        sources=_strings(path, "sources", data.get("sources", {})),
        curves=_curves(path, data.get("curves", {})),
        provenance=_strings(path, "provenance", data.get("provenance", {})),
    )
    _check_sanity(path, profile)
    _check_kind(path, profile, [f"ops.{k}" for k in data.get("ops", {})])
    return profile


def check_keys(path, where: str, table: Any, allowed: set[str], required: set[str]) -> None:
    """Raise unless ``table`` is a table; then on the first unknown key (with a unit-suffix
    hint) or missing required key."""
    if not isinstance(table, dict):
        raise InputError(path, f"expected a table, got {type(table).__name__}", field=where)
    prefix = f"{where}." if where else ""
    for key in table:
        if key not in allowed:
            raise InputError(path, _unknown_hint(key, allowed), field=prefix + key)
    for key in sorted(required - set(table)):
        raise InputError(path, "missing (required)", field=prefix + key)


def _unknown_hint(key: str, allowed: set[str]) -> str:
    stem, _, suffix = key.rpartition("_")
    for name in sorted(allowed if suffix in UNIT_LIKE else ()):
        suffix = name.rsplit("_", 1)[-1]
        if name.rsplit("_", 1)[0] == stem and suffix in UNITS:
            return f"wrong unit suffix: expected '{name}' (in {UNITS[suffix]})"
    return f"unknown field (expected one of {', '.join(sorted(allowed))})"


def typed_value(path, name: str, value: Any, kind: type) -> Any:
    """``value`` as ``kind`` (ints widen to float), or an InputError naming the field."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise InputError(path, f"an integer of {value.bit_length()} bits is beyond the "
                             "range of a float", field=name) from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(path, f"expected {kind.__name__}, got {value!r:.40}", field=name)
    return value


def _section(path, section: str, table: Any, optional: bool = False):
    if not isinstance(table, dict):
        raise InputError(path, "expected a table" if optional else "missing table (required)",
                         field=section)
    types = section_fields(section)
    check_keys(path, section, table, set(types), required=set() if optional else set(types))
    values = {k: typed_value(path, f"{section}.{k}", table[k], t) for k, t in types.items()
              if k in table}
    for key, value in values.items():
        if not isinstance(value, str):
            _check_range(path, f"{section}.{key}", key, value)
    return (OPTIONAL_SECTIONS.get(section) or SECTIONS[section])(**values)


def _check_range(path, name: str, key: str, value: float) -> None:
    suffix = key.rsplit("_", 1)[-1]
    lo, hi = RANGES.get(key, (0.0, 1e7))
    if suffix == "frac":
        lo, hi = 1e-6, 1.0
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InputError(path, f"{value!r:.40} is out of range (expected {lo:g} to {hi:g}"
                         f"{' ' + UNITS[suffix] if suffix in UNITS else ''})", field=name)


def _strings(path, table_name: str, table: Any) -> dict[str, str]:
    if not isinstance(table, dict):
        raise InputError(path, "expected a table of strings", field=table_name)
    return {k: typed_value(path, f"{table_name}.{k}", v, str) for k, v in table.items()}


def _curves(path, table: Any) -> dict[str, Curve | Grid]:
    if not isinstance(table, dict):
        raise InputError(path, "expected tables [curves.<name>]", field="curves")
    curves: dict[str, Curve | Grid] = {}
    for name, axes in table.items():
        where = f"curves.{name}"
        if name not in CURVE_AXES and name not in GRID_AXES:
            known = ", ".join([*CURVE_AXES, *GRID_AXES])
            raise InputError(path, f"unknown curve (expected one of {known})", field=where)
        if not isinstance(axes, dict):
            raise InputError(path, "expected a table", field=where)
        curves[name] = _grid(path, where, name, axes) if name in GRID_AXES \
            else _curve(path, where, name, axes)
    return curves


def _curve(path, where: str, name: str, axes: dict) -> Curve:
    x_key, y_key = CURVE_AXES[name]
    check_keys(path, where, axes, {x_key, y_key}, required={x_key, y_key})
    x, y = (_points(path, f"{where}.{k}", axes[k]) for k in (x_key, y_key))
    if len(x) != len(y) or len(x) < 2:
        raise InputError(path, f"{x_key} and {y_key} need the same length, at least 2",
                         field=where)
    _increasing(path, f"{where}.{x_key}", x)
    return Curve(x, y)


def _grid(path, where: str, name: str, axes: dict) -> Grid:
    """A 2-D table: x and y strictly increasing (x at least 2 points), one row of len(x)
    positive values per y."""
    x_key, y_key, z_key = GRID_AXES[name]
    check_keys(path, where, axes, {x_key, y_key, z_key}, required={x_key, y_key, z_key})
    x, y = (_points(path, f"{where}.{k}", axes[k]) for k in (x_key, y_key))
    if len(x) < 2 or not y:
        raise InputError(path, f"{x_key} needs at least 2 points and {y_key} at least 1",
                         field=where)
    _increasing(path, f"{where}.{x_key}", x)
    _increasing(path, f"{where}.{y_key}", y)
    rows = axes[z_key]
    if not isinstance(rows, list) or len(rows) != len(y):
        raise InputError(path, f"expected {len(y)} rows (one per {y_key})", field=f"{where}.{z_key}")
    z = tuple(_points(path, f"{where}.{z_key}", r) for r in rows)
    if any(len(r) != len(x) for r in z):
        raise InputError(path, f"every row needs {len(x)} values (one per {x_key})",
                         field=f"{where}.{z_key}")
    return Grid(x, y, z)


def _increasing(path, name: str, values: tuple[float, ...]) -> None:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise InputError(path, "must be strictly increasing", field=name)


def _points(path, name: str, values: Any) -> tuple[float, ...]:
    if not isinstance(values, list):
        raise InputError(path, "expected an array of positive numbers", field=name)
    points = tuple(typed_value(path, name, v, float) for v in values)
    if any(not math.isfinite(v) or v <= 0 for v in points):
        raise InputError(path, "expected positive finite numbers", field=name)
    return points


def _check_sanity(path, p: HardwareProfile) -> None:
    hl, ssd = p.host_link, p.ssd
    checks = [
        ("host_link.kind", hl.kind in ("pcie", "nvlink-c2c"), "expected \"pcie\" or \"nvlink-c2c\""),
        ("host_link.h2d_achieved_gbps", hl.h2d_achieved_gbps <= hl.nominal_gbps,
         "achieved bandwidth above host_link.nominal_gbps"),
        ("host_link.d2h_achieved_gbps", hl.d2h_achieved_gbps <= hl.nominal_gbps,
         "achieved bandwidth above host_link.nominal_gbps"),
        ("host_link.bidir_achieved_gbps", hl.bidir_achieved_gbps <= 2 * hl.nominal_gbps,
         "above twice host_link.nominal_gbps"),
        ("host_link.h2d_achieved_gbps", hl.h2d_achieved_gbps < p.gpu.hbm_bw_gbps,
         "host link faster than HBM (gpu.hbm_bw_gbps)"),
        ("ssd.read_gbps", ssd.count * ssd.read_gbps < p.gpu.hbm_bw_gbps,
         "SSDs (count x read_gbps) faster than HBM (gpu.hbm_bw_gbps)"),
        ("ssd.read_gbps", ssd.count * ssd.read_gbps < max(p.host.dram_bw_gbps, 1e-9),
         "SSDs (count x read_gbps) faster than host DRAM (host.dram_bw_gbps)"),
        ("ssd.read_latency_us", ssd.read_latency_us >= 1.0, "below 1 us: not an NVMe SSD"),
    ]
    if hl.kind == "pcie":
        checks.append(("host_link.pcie_gen", hl.pcie_gen >= 1, "a PCIe link needs pcie_gen >= 1"))
        checks.append(("host_link.pcie_lanes", hl.pcie_lanes in (1, 2, 4, 8, 16, 32),
                       "expected 1, 2, 4, 8, 16 or 32 lanes"))
    for name, ok, problem in checks:
        if not ok:
            raise InputError(path, problem, field=name)


def _check_kind(path, p: HardwareProfile, ops_given: list[str]) -> None:
    """Sources name known fields; a datasheet profile cites every number it states (its
    [ops] entries included) and has no curves; the others name their run and date."""
    numbers = [f"{s}.{k}" for s in SECTIONS for k, t in section_fields(s).items() if t is not str]
    ops = [f"ops.{k}" for k in section_fields("ops")]
    known = set(numbers) | set(ops) | {f"{s}.{k}" for s in SECTIONS for k in section_fields(s)}
    numbers += ops_given
    for key in p.sources:
        if key not in known:
            raise InputError(path, "source for an unknown field", field=f"sources.{key}")
    if p.kind == "datasheet":
        if p.curves:
            raise InputError(path, "measured curves need kind = \"calibrated\" or \"imported\"",
                             field="curves")
        for name in numbers:
            if name not in p.sources:
                raise InputError(path, "a datasheet profile needs a source for every number "
                                 f"(add \"{name}\" = \"...\" under [sources])", field="sources")
    else:
        for key in ("run", "date"):
            if key not in p.provenance:
                raise InputError(path, f"a {p.kind} profile names its run: missing",
                                 field=f"provenance.{key}")
