"""What the core is built from: tier capacities, eviction policies and the placement rules.

The placement rules say which blocks go down to which tier, and when. They are data, so an
engine's behaviour (a frequency filter before disk, a write policy) is a value here, not a
branch in the loop. Per lower tier (DRAM, SSD):

- ``copy_on``: ``store`` (a copy goes down as soon as the block qualifies: when it is computed
  or lands in the tier above, or when a prefix hit makes it qualify) or ``evict`` (it goes
  down only when evicted from the tier above, if no lower tier holds it);
- ``min_hits``: prefix hits a block needs to qualify (0: at once). Hits count every time a
  request finds the block in its stored prefix, in any tier (one rule for both modes).

And ``inclusive``: a block promoted upward keeps its lower copy (False: it leaves the lower
tier, so a block lives in one tier). The config's names map to rules thus::

    write-through                -> DRAM store/0, SSD store/0
    write-through-selective (n)  -> DRAM store/n, SSD store/n     (on the n-th prefix hit)
    write-back                   -> DRAM evict/0, SSD evict/0
    exclusive tiers (any write)  -> DRAM evict/0, SSD evict/0, inclusive False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CopyOn = Literal["store", "evict"]


@dataclass(frozen=True)
class TierRules:
    """When blocks are copied or moved into the lower tiers (module docstring)."""

    inclusive: bool = True
    """A block promoted upward keeps its lower copy."""
    copy_on: tuple[CopyOn, CopyOn] = ("store", "store")
    """DRAM's and SSD's: ``store`` (as soon as a block qualifies) or ``evict`` (on eviction)."""
    min_hits: tuple[int, int] = (0, 0)
    """Prefix hits a block needs before it enters DRAM / SSD."""

    @classmethod
    def from_write(cls, write: str, inclusive: bool, store_threshold: int = 2) -> TierRules:
        """The rules of a write policy name and tier inclusion (module docstring's table)."""
        if not inclusive or write == "write-back":
            return cls(inclusive, ("evict", "evict"), (0, 0))
        if write == "write-through-selective":
            return cls(True, ("store", "store"), (store_threshold, store_threshold))
        return cls(True, ("store", "store"), (0, 0))


@dataclass(frozen=True)
class CoreSpec:
    """The hierarchy the core manages."""

    capacity_blocks: tuple[int, int, int]
    """HBM, DRAM, SSD capacity in blocks (0 = absent)."""
    eviction: tuple[str, str, str] = ("lru", "lru", "lru")
    """Eviction policy name per tier (kvplan.sim.policies)."""
    rules: TierRules = TierRules()
    """Placement rules."""

    @classmethod
    def of(cls, capacity_blocks: tuple[int, int, int], eviction: str | tuple[str, str, str] = "lru",
           write: str = "write-through", inclusive: bool = True, store_threshold: int = 2
           ) -> CoreSpec:
        """A spec from config-style values; one eviction name means every tier."""
        names = (eviction,) * 3 if isinstance(eviction, str) else tuple(eviction)
        return cls(tuple(int(c) for c in capacity_blocks), names,  # type: ignore[arg-type]
                   TierRules.from_write(write, inclusive, store_threshold))
