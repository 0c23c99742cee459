"""PlanSpec: everything one plan needs, and its file form (``--spec plan.toml``).

Precedence: command-line flags > the spec file > these defaults. Example file::

    trace = "traces/mooncake_fast25_synthetic_trace.jsonl"
    model = "llama-3.1-8b"
    profiles = ["h100-sxm"]
    objective = "usd_per_h"          # usd_per_h | usd_per_mtok | goodput_per_usd
    load_scale = 0.25

    [slo]
    ttft_ms = 2000
    percentile = 99

    [space]                          # any grid left out comes from the workload footprint
    replicas = [1, 2, 4]             # sizes below are per replica
    dram_gib = [0, 64, 128, 256]
    evictions = ["lru", "s3fifo"]
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvplan.engines.base import disk_dir_problem
from kvplan.errors import InputError
from kvplan.plan.costing import OBJECTIVES
from kvplan.plan.screen import Slo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPACE_KEYS = ("replicas", "hbm_kv_gib", "dram_gib", "ssd_gib", "evictions", "inclusive", "prefetch",
              "write", "tp", "ep")


@dataclass(frozen=True)
class PlanSpec:
    """One planning question."""

    trace: str | None = None
    """Trace file or canonical Parquet; None = the bundled Mooncake trace."""
    model: str = "llama-3.1-8b"
    """Model preset or config.json path."""
    profiles: tuple[str, ...] = ("h100-sxm",)
    """Candidate hardware profiles (names or TOML paths)."""
    prices: str | None = None
    """Price table TOML; None = the bundled one."""
    kv_dtype: str = "bf16"
    """KV cache element type."""
    slo: Slo = field(default_factory=lambda: Slo(ttft_ms=5000.0, percentile=90.0))
    """Service-level objective."""
    objective: str = "usd_per_h"
    """usd_per_h (least $/h), usd_per_mtok (least $/M tokens), goodput_per_usd (most goodput/$)."""
    load_scale: float = 1.0
    """Arrival-rate multiplier applied to the trace (0.5 = half the rate)."""
    space: dict[str, Any] = field(default_factory=dict)
    """Grid overrides (keys: replicas, hbm_kv_gib, dram_gib, ssd_gib, evictions, inclusive,
    prefetch, write; tp: GPUs per replica to search; ep: expert-parallel size, 1 or = tp)."""
    verify_top: int = 5
    """Best candidates re-run in the event simulator."""
    verify_near_misses: int = 2
    """Cheapest infeasible candidates also re-run (the screen may be wrong about them)."""
    jobs: int = 2
    """Parallel processes for stage 2."""
    verify_wall_s: float = 60.0
    """Wall-time cap of one verification run."""
    verify_window_s: float | None = None
    """Replay only the busiest this-many seconds of arrivals (plus as long a warm-up) in
    event verification (kvplan.plan.window); None = the whole trace."""
    max_batched_tokens: int = 8192
    """Scheduler token budget per iteration."""
    max_seqs: int = 256
    """Maximum running sequences."""
    seed: int = 0
    """Seed of every random choice."""
    exact_max_accesses: int = 20_000_000
    """Longest block-access stream given exact stack distances; longer ones are sampled
    (SHARDS, kvplan.plan.sampling)."""
    sample_rate: float | None = None
    """SHARDS rate in (0, 1] for sampled streams; None = about 2 M sampled accesses."""
    disk_dir: str = "/mnt/kvcache"
    """Directory of the SSD tier's files in the engine settings."""
    arrivals: str = "closed"
    """Arrivals of the verification replays: closed (sessions' turns released by the
    simulated server) or open (trace times); kvplan.sim.arrivals."""


def load_spec(path: Path) -> PlanSpec:
    """Read a plan.toml; unknown keys and wrong types are one-line InputErrors."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(path, f"not a readable TOML file ({exc})") from None
    return spec_from_dict(raw, path)


def spec_from_dict(raw: dict[str, Any], path: Path | str = "<spec>") -> PlanSpec:
    """Build a PlanSpec from a TOML-shaped dict, checking every key."""
    names = {f.name for f in dataclasses.fields(PlanSpec)}
    for key in raw:
        if key not in names:
            raise InputError(path, f"unknown key (expected one of {', '.join(sorted(names))})",
                             field=key)
    kw = dict(raw)
    if "slo" in kw:
        kw["slo"] = _slo(kw["slo"], path)
    if "profiles" in kw:
        kw["profiles"] = tuple(_list(kw["profiles"], "profiles", path))
    for key in kw.get("space", {}):
        if key not in SPACE_KEYS:
            raise InputError(path, f"unknown key (expected one of {', '.join(SPACE_KEYS)})",
                             field=f"space.{key}")
    for key in ("replicas", "tp"):
        values = kw.get("space", {}).get(key, [1])
        if not isinstance(values, (list, tuple)) or not all(
                isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in values):
            raise InputError(path, "expected a list of whole numbers >= 1", field=f"space.{key}")
    ep = kw.get("space", {}).get("ep", 1)
    if not isinstance(ep, int) or isinstance(ep, bool) or ep < 1:
        raise InputError(path, "expected a whole number >= 1", field="space.ep")
    limit = kw.get("exact_max_accesses", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise InputError(path, "expected a whole number >= 0", field="exact_max_accesses")
    rate = kw.get("sample_rate")
    if rate is not None and (not isinstance(rate, (int, float)) or isinstance(rate, bool)
                             or not 0 < rate <= 1):
        raise InputError(path, "expected a number in (0, 1]", field="sample_rate")
    problem = disk_dir_problem(kw.get("disk_dir", "/"))
    if problem:
        raise InputError(path, problem, field="disk_dir")
    if kw.get("arrivals", "closed") not in ("closed", "open"):
        raise InputError(path, "expected closed or open", field="arrivals")
    if kw.get("objective", "usd_per_h") not in OBJECTIVES:
        raise InputError(path, f"expected one of {', '.join(OBJECTIVES)}", field="objective")
    return PlanSpec(**kw)


def _slo(raw: Any, path: Path | str) -> Slo:
    names = {f.name for f in dataclasses.fields(Slo)}
    if not isinstance(raw, dict):
        raise InputError(path, "expected a table", field="slo")
    for key, value in raw.items():
        if key not in names:
            raise InputError(path, f"unknown key (expected one of {', '.join(sorted(names))})",
                             field=f"slo.{key}")
        if not isinstance(value, (int, float)) or value <= 0:
            raise InputError(path, "expected a number > 0", field=f"slo.{key}")
    return Slo(**raw)


def _list(value: Any, name: str, path: Path | str) -> list:
    if not isinstance(value, list) or not value:
        raise InputError(path, "expected a non-empty list", field=name)
    return value


def spec_to_toml(spec: PlanSpec) -> str:
    """The resolved spec as TOML (written next to the results)."""
    lines = []
    tables = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if f.name == "slo":
            tables["slo"] = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
        elif f.name == "space":
            tables["space"] = value
        elif value is not None:
            lines.append(f"{f.name} = {_toml_value(value)}")
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
