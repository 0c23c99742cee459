"""The planner's side of engine settings: the recommended row as a :class:`TierChoice`.

What each engine runs and how it is told lives in :mod:`kvplan.engines` (docs/engines.md).
"""

from __future__ import annotations

from kvplan.engines import EngineSettings, TierChoice, engine_settings
from kvplan.engines.base import model_id
from kvplan.model.kv import kv_bytes_per_token
from kvplan.model.spec import load_model
from kvplan.plan.spec import PlanSpec
from kvplan.units import GIB

__all__ = ["EngineSettings", "TierChoice", "engine_settings", "model_id", "tier_choice"]

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
