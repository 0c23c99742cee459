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

from kvplan.bounds import (
    AT_LEAST_ONE,
    COUNT,
    NON_NEGATIVE,
    OPEN_SHARE,
    PERCENTILE,
    POSITIVE,
    SEED,
    Bound,
)
from kvplan.engines import ENGINES, FREE
from kvplan.engines.base import disk_dir_problem
from kvplan.errors import InputError, KvplanError
from kvplan.plan.costing import OBJECTIVES
from kvplan.plan.screen import Slo
from kvplan.sim.policies import eviction_policy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENGINE_NAMES = tuple(ENGINES)
SPACE_KEYS = ("replicas", "hbm_kv_gib", "dram_gib", "ssd_gib", "evictions", "inclusive", "prefetch",
              "write", "tp", "ep")
DEFAULT_SLO = Slo(ttft_ms=5000.0, percentile=90.0)
"""The SLO of a plan that names none; a ``[slo]`` table without ``percentile`` gets its 90."""
BOUNDS: dict[str, Bound] = {
    "load_scale": POSITIVE, "verify_top": COUNT, "verify_near_misses": COUNT,
    "jobs": AT_LEAST_ONE, "verify_wall_s": POSITIVE, "verify_window_s": POSITIVE,
    "max_batched_tokens": AT_LEAST_ONE, "max_seqs": AT_LEAST_ONE, "seed": SEED,
    "exact_max_accesses": COUNT, "sample_rate": OPEN_SHARE,
    "slo.ttft_ms": POSITIVE, "slo.tpot_ms": POSITIVE, "slo.percentile": PERCENTILE,
    "slo.min_rate_rps": POSITIVE,
    "space.replicas": AT_LEAST_ONE, "space.tp": AT_LEAST_ONE, "space.ep": AT_LEAST_ONE,
    "space.hbm_kv_gib": POSITIVE, "space.dram_gib": NON_NEGATIVE, "space.ssd_gib": NON_NEGATIVE,
}
"""Allowed numbers of every numeric setting (key: field, dotted inside a table); grids
(space.replicas ... space.ssd_gib, except space.ep) are lists of them."""


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
    slo: Slo = DEFAULT_SLO
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
    engines: tuple[str, ...] = ENGINE_NAMES
    """Engines to recommend for, each from what it can run (kvplan.plan.engines); ("none",)
    = the free search over every policy."""
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
    for table in ("slo", "space"):
        if not isinstance(raw.get(table, {}), dict):
            raise InputError(path, "expected a table", field=table)
    for key in raw.get("space", {}):
        if key not in SPACE_KEYS:
            raise InputError(path, f"unknown key (expected one of {', '.join(SPACE_KEYS)})",
                             field=f"space.{key}")
    _check_numbers(raw, path)
    _check_evictions(raw.get("space", {}).get("evictions"), path)
    kw = dict(raw)
    if "slo" in kw:
        kw["slo"] = _slo(kw["slo"], path)
    if "profiles" in kw:
        kw["profiles"] = tuple(_list(kw["profiles"], "profiles", path))
    if "engines" in kw:
        kw["engines"] = tuple(_list(kw["engines"], "engines", path))
        valid = (*ENGINE_NAMES, FREE)
        bad = [e for e in kw["engines"] if e not in valid]
        if bad or (FREE in kw["engines"] and len(kw["engines"]) > 1):
            raise InputError(path, f"expected engines from {', '.join(valid)} ('{FREE}' "
                             f"alone), got {', '.join(map(str, kw['engines']))}", field="engines")
    problem = disk_dir_problem(kw.get("disk_dir", "/"))
    if problem:
        raise InputError(path, problem, field="disk_dir")
    if kw.get("arrivals", "closed") not in ("closed", "open"):
        raise InputError(path, "expected closed or open", field="arrivals")
    if kw.get("objective", "usd_per_h") not in OBJECTIVES:
        raise InputError(path, f"expected one of {', '.join(OBJECTIVES)}", field="objective")
    return PlanSpec(**kw)


def _check_numbers(raw: dict[str, Any], path: Path | str) -> None:
    """Every numeric setting given is a number (a non-empty list of them for a grid) within
    BOUNDS; None stands for "not set" where the field allows it."""
    for key, bound in BOUNDS.items():
        table, _, name = key.rpartition(".")
        where = raw.get(table, {}) if table else raw
        if name not in where or where[name] is None and key in _OPTIONAL:
            continue
        value = where[name]
        kind = "whole number" if bound.whole else "number"
        grid = table == "space" and name != "ep"
        if grid and (not isinstance(value, (list, tuple)) or not value):
            raise InputError(path, f"expected a non-empty list of {kind}s", field=key)
        for v in value if grid else [value]:
            if isinstance(v, bool) or not isinstance(v, int if bound.whole else (int, float)):
                raise InputError(path, f"expected a {kind}, got {v!r}", field=key)
            if not bound.accepts(v):
                raise InputError(path, f"expected {bound.words()}, got {v!r}", field=key)


def _check_evictions(names: Any, path: Path | str) -> None:
    """space.evictions: registered policy names, at least one online (an offline bound such
    as belady reads the trace's future: shown beside the others, never recommended)."""
    if names is None:
        return
    if not isinstance(names, (list, tuple)) or not names or not all(
            isinstance(n, str) for n in names):
        raise InputError(path, "expected a non-empty list of eviction policy names",
                         field="space.evictions")
    try:
        policies = [eviction_policy(n) for n in names]
    except KvplanError as exc:
        raise InputError(path, str(exc), field="space.evictions") from None
    if all(p.is_oracle for p in policies):
        raise InputError(path, "only offline bounds (they read the trace's future), never a "
                         "recommendation; add an online policy beside them",
                         field="space.evictions")


_OPTIONAL = ("verify_window_s", "sample_rate", "slo.ttft_ms", "slo.tpot_ms", "slo.min_rate_rps")


def _slo(raw: Any, path: Path | str) -> Slo:
    names = {f.name for f in dataclasses.fields(Slo)}
    if not isinstance(raw, dict):
        raise InputError(path, "expected a table", field="slo")
    for key in raw:
        if key not in names:
            raise InputError(path, f"unknown key (expected one of {', '.join(sorted(names))})",
                             field=f"slo.{key}")
    return Slo(**({"percentile": DEFAULT_SLO.percentile} | raw))


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
