"""The planner's side of engines: which candidates each engine can run, its recommendation,
and the recommended row as a :class:`TierChoice`.

What each engine runs and how it is told lives in :mod:`kvplan.engines` (docs/engines.md).
A candidate runs on an engine when the engine's own settings check passes for it (one
eviction on every tier, inclusion, write and prefetch policy, tiers it has); the check is
the one the settings writer reports, applied to each distinct policy shape of the screen::

    (eviction, DRAM tier?, SSD tier?, inclusive)  ->  engine(E).settings(choice).ok

Per engine the candidates it runs are decided like the free search (simulation first, then
the screen); a better candidate it cannot run is reported as a labelled what-if with the
difference, never recommended.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from kvplan.engines import FREE, EngineSettings, TierChoice, engine, engine_settings
from kvplan.engines.base import model_id
from kvplan.model.kv import kv_bytes_per_token
from kvplan.model.spec import load_model
from kvplan.plan.recommend import ASCENDING
from kvplan.plan.spec import PlanSpec
from kvplan.units import GIB

__all__ = ["EnginePlan", "EngineSettings", "TierChoice", "deployable_mask", "engine_plans",
           "engine_plans_frame", "engine_settings", "model_id", "searched_engines",
           "tier_choice"]

_SHAPE = ("eviction", "dram_gib", "ssd_gib", "inclusive")


@dataclass(frozen=True)
class EnginePlan:
    """One engine's recommendation, side by side with the others'."""

    engine: str
    label: str
    best: dict | None
    """The decided candidate row it runs (None: it runs nothing in the search space)."""
    feasible: bool
    """The row meets the SLO (in simulation when verified, else in the screen)."""
    settings: EngineSettings | None
    what_if: str
    """A better candidate it cannot run, labelled, with the difference ("" when none)."""


def searched_engines(spec: PlanSpec) -> tuple[str, ...]:
    """The engines the plan recommends for; () for ``--engine none`` (free search)."""
    return () if spec.engines == (FREE,) else spec.engines


def tier_choice(best: dict, block_size: int, spec: PlanSpec) -> TierChoice:
    """The recommended candidate (one replica) as the engines must be told it."""
    model = load_model(spec.model)
    space = spec.space
    return TierChoice(
        model=model_id(spec.model, model.source), block_size=block_size,
        kv_bytes_per_token=kv_bytes_per_token(model, spec.kv_dtype),
        hbm_kv_bytes=int(best["hbm_kv_gib"] * GIB), dram_bytes=int(best["dram_gib"] * GIB),
        ssd_bytes=int(best["ssd_gib"] * GIB), eviction=str(best["eviction"]),
        write=space.get("write", "write-through"), prefetch=space.get("prefetch", "none"),
        inclusive=bool(best.get("inclusive", True)), tp=int(best.get("tp", 1)),
        disk_dir=spec.disk_dir, max_batched_tokens=spec.max_batched_tokens,
        max_seqs=spec.max_seqs)


def recommended_settings(best: dict, block_size: int, spec: PlanSpec) -> list[EngineSettings]:
    """Settings of every engine for one replica of the recommended candidate."""
    return engine_settings(tier_choice(best, block_size, spec))


def deployable_mask(df: pl.DataFrame, name: str, block_size: int, spec: PlanSpec
                    ) -> pl.Series:
    """True for the rows of ``df`` that engine ``name`` can run (module docstring)."""
    shapes = df.select(_SHAPE).unique()
    ok = []
    for row in shapes.iter_rows(named=True):
        probe = {"hbm_kv_gib": 1.0, "tp": 1, **row,
                 "dram_gib": 2.0 if row["dram_gib"] > 0 else 0.0,
                 "ssd_gib": 4.0 if row["ssd_gib"] > 0 else 0.0}
        choice = tier_choice(probe, block_size, spec)
        ok.append(engine(name).settings(choice).ok)
    table = shapes.with_columns(pl.Series("_ok", ok, dtype=pl.Boolean))
    joined = df.select(_SHAPE).with_row_index("_i").join(table, on=list(_SHAPE), how="left")
    return joined.sort("_i")["_ok"].fill_null(False)


def engine_plans(decided: pl.DataFrame, feasible_col: str, block_size: int, spec: PlanSpec
                 ) -> list[EnginePlan]:
    """Each searched engine's best row of ``decided`` (ranked: passing candidates first, by
    the objective), its settings, and the what-if of the overall best when it cannot run it."""
    plans = []
    top = decided.row(0, named=True) if decided.height else None
    for name in searched_engines(spec):
        caps = engine(name).caps
        runs = decided.filter(deployable_mask(decided, name, block_size, spec))
        if runs.height == 0:
            plans.append(EnginePlan(name, caps.label, None, False, None,
                                    "it runs no candidate of the search space"))
            continue
        best = runs.row(0, named=True)
        settings = engine(name).settings(tier_choice(best, block_size, spec))
        plans.append(EnginePlan(name, caps.label, best, bool(best[feasible_col]), settings,
                                _what_if(top, best, feasible_col, spec)))
    return plans


def _what_if(top: dict | None, best: dict, feasible_col: str, spec: PlanSpec) -> str:
    """The overall best, when it differs and is better, as a labelled what-if."""
    if top is None or top["candidate_id"] == best["candidate_id"]:
        return ""
    obj = spec.objective
    better = bool(top[feasible_col]) and not bool(best[feasible_col]) or (
        bool(top[feasible_col]) == bool(best[feasible_col])
        and (top[obj] < best[obj] if ASCENDING[obj] else top[obj] > best[obj]))
    if not better:
        return ""
    shape = (f"{top['eviction']}, {'inclusive' if top['inclusive'] else 'exclusive'} tiers, "
             f"HBM {top['hbm_kv_gib']:g} / DRAM {top['dram_gib']:g} / SSD {top['ssd_gib']:g} "
             f"GiB x {top['replicas']}")
    diff = top[obj] - best[obj]
    pct = f" ({diff / best[obj]:+.1%})" if best[obj] else ""
    meets = "" if bool(top[feasible_col]) == bool(best[feasible_col]) else (
        "; it meets the SLO, this engine's best does not")
    return (f"what-if, not deployable on this engine: {shape} gives {obj} "
            f"{top[obj]:.4g} vs {best[obj]:.4g}{pct}{meets} (candidate "
            f"#{top['candidate_id']})")


def engine_plans_frame(plans: list[EnginePlan]) -> pl.DataFrame:
    """One row per engine: engine, label, meets_slo, what_if, then the chosen candidate's
    columns (null where the engine runs no candidate); docs/plan.md lists them."""
    rows = [{"engine": p.engine, "label": p.label, "meets_slo": p.feasible,
             "what_if": p.what_if} | (p.best or {}) for p in plans]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
