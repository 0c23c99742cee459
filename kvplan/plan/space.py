"""The search space: tier-size grids and policies, with defaults from the workload's footprint.

The footprint is the distinct KV bytes the trace ever touches (distinct blocks x block bytes);
no tier larger than it can add hits. Default grids (one serving replica = tp GPUs, so the
node's DRAM and SSD are shared by its GPUs; every size is per replica)::

    replicas 1, 2, 3, 4, at most the node's GPU count / tp
    HBM KV   25 %, 50 %, 75 %, 100 % of what the GPU leaves after weights and activations
    DRAM     0 and 1/32 .. 2 x footprint (doubling), capped at the node DRAM per GPU
    SSD      0 and 1/4, 1/2, 1, 2 x footprint, capped at the node SSD per GPU

    e.g. footprint 84 GiB -> DRAM {0, 3, 6, 11, 21, 42, 84, 168} GiB
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from kvplan.errors import KvplanError

HBM_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
DRAM_FOOTPRINT_MULTIPLES = (0.0, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0)
SSD_FOOTPRINT_MULTIPLES = (0.0, 0.25, 0.5, 1.0, 2.0)
DEFAULT_EVICTIONS = ("lru", "fifo", "arc")
DEFAULT_REPLICAS = (1, 2, 3, 4)


@dataclass(frozen=True)
class SearchSpace:
    """Every combination of these values is one candidate configuration."""

    replicas: tuple[int, ...]
    """Replica counts (each replica: tp GPUs and its own tiers; kvplan.plan.routing)."""
    hbm_kv_gib: tuple[float, ...]
    """HBM budgets for KV blocks per replica (GiB)."""
    dram_gib: tuple[float, ...]
    """Host DRAM KV tier sizes per replica (GiB; 0 = no tier)."""
    ssd_gib: tuple[float, ...]
    """SSD KV tier sizes per replica (GiB; 0 = no tier)."""
    evictions: tuple[str, ...] = DEFAULT_EVICTIONS
    """Eviction policy names, applied to every tier of a candidate."""
    inclusive: tuple[bool, ...] = (True,)
    """Tier hierarchies to try: inclusive (True) and/or exclusive (False)."""
    prefetch: str = "none"
    """Prefetch policy of every candidate."""
    write: str = "write-through"
    """Write policy of every candidate."""

    def tier_configs(self) -> list[tuple[float, float, float, bool]]:
        """(hbm_kv_gib, dram_gib, ssd_gib, inclusive) combinations that an engine can deploy,
        in grid order.

        An SSD tier needs a DRAM tier larger than the HBM KV pool: every engine stages disk
        blocks through host memory, SGLang HiCache refuses a host pool not larger than the
        device pool, and Dynamo KVBM needs CPU cache >= GPU KV (kvplan.plan.engines).
        """
        if not self.evictions or not self.replicas:
            raise KvplanError("search space is empty: the replicas and evictions grids need at "
                              "least one value")
        combos = [c for c in itertools.product(self.hbm_kv_gib, self.dram_gib, self.ssd_gib,
                                               self.inclusive) if deployable(*c[:3])]
        if not combos:
            raise KvplanError("search space is empty: every grid (hbm_kv_gib, dram_gib, ssd_gib, "
                              "inclusive) needs a value, and an SSD tier needs a DRAM tier "
                              "larger than the HBM KV pool")
        return combos

    @property
    def size(self) -> int:
        return len(self.tier_configs()) * len(self.evictions) * len(self.replicas)


def deployable(hbm_kv_gib: float, dram_gib: float, ssd_gib: float) -> bool:
    """False for an SSD tier without a DRAM tier larger than the HBM KV pool.

    Example: (27, 0, 630) -> False; (27, 64, 630) -> True; (27, 8, 0) -> True.
    """
    return ssd_gib <= 0 or dram_gib > hbm_kv_gib


def nice_gib(x: float, down: bool = False) -> float:
    """Round a size to 2 significant figures (GiB), keeping 0 at 0; ``down`` never rounds up.

    Example: 83.7 -> 84.0; 55.9 with down -> 55.0.
    """
    if x <= 0:
        return 0.0
    digits = 1 - int(math.floor(math.log10(x)))
    if down:
        return float(math.floor(x * 10**digits) / 10**digits)
    return float(round(x, digits))


def default_space(footprint_gib: float, hbm_kv_max_gib: float, dram_cap_gib: float,
                  ssd_cap_gib: float, max_replicas: int = 1) -> SearchSpace:
    """Grids derived from the footprint and the profile's per-replica capacities.

    Example: footprint 10, HBM 40, DRAM cap 256, SSD cap 3500, 8 replicas fit -> replicas
    {1, 2, 3, 4}, HBM {10, 20, 30, 40}, DRAM {0, 0.31, 0.62, 1.2, 2.5, 5, 10, 20},
    SSD {0, 2.5, 5, 10, 20}.
    """
    if hbm_kv_max_gib <= 0:
        raise KvplanError(f"the GPU has no room for KV blocks (HBM KV capacity "
                          f"{hbm_kv_max_gib:.1f} GiB): pick a larger GPU or a smaller model")
    hbm = tuple(sorted({nice_gib(f * hbm_kv_max_gib, down=True) for f in HBM_FRACTIONS}))
    dram = _grid(footprint_gib, DRAM_FOOTPRINT_MULTIPLES, dram_cap_gib)
    ssd = _grid(footprint_gib, SSD_FOOTPRINT_MULTIPLES, ssd_cap_gib)
    replicas = tuple(r for r in DEFAULT_REPLICAS if r <= max(max_replicas, 1))
    return SearchSpace(replicas=replicas, hbm_kv_gib=hbm, dram_gib=dram, ssd_gib=ssd,
                       inclusive=(True, False))


def _grid(footprint_gib: float, multiples: tuple[float, ...], cap_gib: float) -> tuple[float, ...]:
    return tuple(sorted({min(nice_gib(m * footprint_gib), nice_gib(cap_gib, down=True))
                         for m in multiples}))
