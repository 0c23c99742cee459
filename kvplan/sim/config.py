"""ReplayConfig: everything one replay needs besides the workload (docs/simulation.md).

One frozen spec passed whole to the simulator, never a flag threaded through signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kvplan.cost.layout import Layout

Mode = Literal["event", "cache"]
WritePolicy = Literal["write-through", "write-through-selective", "write-back"]
KvDtype = Literal["bf16", "fp16", "fp8", "int4", "int2"]
ArrivalMode = Literal["closed", "open"]


@dataclass(frozen=True)
class ReplayConfig:
    """One serving configuration to replay a workload through."""

    model: str = "llama-3.1-8b"
    """Model preset name or path of a Hugging Face config.json."""
    profile: str = "h100-sxm"
    """Hardware profile name (hwprofiles/) or path of a profile TOML."""
    kv_dtype: KvDtype = "bf16"
    """KV cache element type."""
    layout: Layout = Layout()
    """Tensor / data / expert parallel sizes (tp None = the fewest GPUs that hold the
    weights); dp > 1 replays are routed over replicas by kvplan.plan.replicas."""
    engine: str = "none"
    """Engine whose behaviours the run follows (kvplan.engines: its scheduler rules, offload
    filters); ``none`` = kvplan's own rules."""
    mode: Mode = "event"
    """``event``: timed continuous-batching replica; ``cache``: timing-free block replay."""
    hbm_kv_gib: float | None = None
    """HBM given to KV blocks; None = GPU memory - weights - activation reserve."""
    dram_gib: float = 0.0
    """Host DRAM KV tier size (0 = absent)."""
    ssd_gib: float = 0.0
    """NVMe SSD KV tier size (0 = absent)."""
    eviction_hbm: str = "lru"
    """Eviction policy of the HBM tier (a registered name)."""
    eviction_dram: str = "lru"
    """Eviction policy of the DRAM tier."""
    eviction_ssd: str = "lru"
    """Eviction policy of the SSD tier."""
    prefetch: str = "none"
    """Prefetch policy: none, lookahead, session, session+lookahead, oracle."""
    storage_prefetch: str = "wait_complete"
    """How long admission waits for SSD hits: wait_complete, best_effort or timeout (an
    engine's policy, kvplan.sim.storageprefetch; other than wait_complete only where the
    engine declares it)."""
    lookahead_iters: int = 8
    """lookahead: stage blocks of requests expected to be admitted within K iterations."""
    staging_budget_frac: float = 0.1
    """lookahead, session: share of HBM KV capacity that staged (not yet admitted) blocks may
    hold."""
    layerwise_load: bool = False
    """Loads overlap the request's own prefill layer by layer (kvplan.sim.overlap)."""
    stage_ttl_s: float = 30.0
    """session prefetch: a staged session is dropped when its next turn has not arrived
    this long after the previous turn ended."""
    write: WritePolicy = "write-through"
    """When blocks are copied to lower tiers."""
    store_threshold: int = 2
    """write-through-selective: store a block in lower tiers on its n-th hit."""
    inclusive: bool = True
    """Inclusive tiers keep a copy below when a block moves up; exclusive ones do not."""
    session_ttl_s: float = 0.0
    """Agent sessions: pin a finished turn's blocks in HBM this long (0 = off)."""
    arrivals: ArrivalMode = "closed"
    """Event mode: ``closed`` releases a session's next turn when the previous one finishes
    plus its gap (a Dynamo graph node when all its parents have); ``open`` keeps every trace
    arrival time (kvplan.sim.arrivals)."""
    max_batched_tokens: int = 8192
    """Scheduler token budget per iteration (prefill chunks + decodes)."""
    max_seqs: int = 256
    """Maximum running sequences."""
    slo_ttft_ms: float | None = None
    """TTFT objective for goodput (None = no TTFT objective)."""
    slo_tpot_ms: float | None = None
    """TPOT objective for goodput (None = no TPOT objective)."""
    max_sim_s: float = 86_400.0
    """Simulated-time cap: the run stops and reports unfinished requests past it."""
    max_wall_s: float = 600.0
    """Wall-time cap of one run."""

    @property
    def evictions(self) -> tuple[str, str, str]:
        """Eviction policy names of HBM, DRAM and SSD."""
        return self.eviction_hbm, self.eviction_dram, self.eviction_ssd
