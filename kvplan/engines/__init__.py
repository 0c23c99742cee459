"""Engine models: what vLLM, vLLM + LMCache, SGLang HiCache and Dynamo KVBM can run at a named
version, and the settings that start them (docs/engines.md).

One module per engine, each with ``CAPS`` (typed capability data) and ``settings(choice)``;
this registry names them. Example::

    from kvplan.engines import engine_settings, TierChoice
    for s in engine_settings(TierChoice(model="meta-llama/Llama-3.1-8B", block_size=512,
                                        kv_bytes_per_token=131_072, hbm_kv_bytes=40 << 30,
                                        dram_bytes=100 << 30)):
        print(s.command())
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvplan.engines import kvbm, lmcache, sglang, vllm
from kvplan.engines.base import Capabilities, EngineSettings, TierChoice
from kvplan.errors import KvplanError
from kvplan.sim.core.spec import TierRules
from kvplan.sim.schedrules import SchedulerRules
from kvplan.sim.storageprefetch import WAIT_COMPLETE, StorageWait

__all__ = ["ENGINES", "FREE", "Capabilities", "Engine", "EngineSettings", "TierChoice", "engine",
           "engine_settings", "scheduler_rules", "storage_wait", "tier_rules"]

FREE = "none"
"""``--engine none``: no engine's limits; kvplan's own rules (vLLM's scheduler rules, the
tier rules of the write policy as named)."""


@dataclass(frozen=True)
class Engine:
    """One target: its capabilities and its settings writer."""

    caps: Capabilities
    settings: Callable[[TierChoice], EngineSettings]

    @property
    def name(self) -> str:
        return self.caps.engine


ENGINES: dict[str, Engine] = {m.CAPS.engine: Engine(m.CAPS, m.settings)
                              for m in (vllm, lmcache, sglang, kvbm)}


def engine(name: str) -> Engine:
    """The engine called ``name``; an unknown name lists the valid ones."""
    if name not in ENGINES:
        raise KvplanError(f"unknown engine {name!r} (expected one of "
                          f"{', '.join([*ENGINES, FREE])})")
    return ENGINES[name]


def scheduler_rules(name: str) -> SchedulerRules:
    """The scheduler rules the simulator runs for engine ``name`` (``none``: vLLM's, the
    scheduler kvplan models)."""
    return engine("vllm" if name == FREE else name).caps.scheduler


def storage_wait(name: str, policy: str) -> StorageWait:
    """How long engine ``name`` waits for storage hits under ``policy``: a policy the engine
    declares (``Capabilities.storage_waits``), or ``wait_complete`` for any engine."""
    offered = dict(engine(name).caps.storage_waits) if name != FREE else {}
    if policy in offered:
        return offered[policy]
    if policy == "wait_complete":
        return WAIT_COMPLETE
    raise KvplanError(f"--storage-prefetch {policy}: expected one of {', '.join(offered)}"
                      if offered else f"--storage-prefetch is valid only with an engine that "
                      f"declares storage prefetch policies (--engine sglang-hicache), not "
                      f"--engine {name}")


def tier_rules(name: str, write: str, inclusive: bool, store_threshold: int) -> TierRules:
    """The placement rules the simulator runs for engine ``name`` and a write policy."""
    if name == FREE:
        return TierRules.from_write(write, inclusive, store_threshold)
    return engine(name).caps.tier_rules(write, inclusive, store_threshold)


def engine_settings(choice: TierChoice) -> list[EngineSettings]:
    """Settings for every engine, each with its rules checked."""
    return [e.settings(choice) for e in ENGINES.values()]
